package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.util.Collections;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The address a real engine advertises on this machine without MOONCAKE_LOCAL_HOSTNAME. The
 * development VM maps its host name to 127.0.0.1 in /etc/hosts, which is the case this guards.
 */
@Tag("integration")
@Timeout(60)
class AdvertisedAddressIntegrationTest {
    @Test
    void shouldAdvertiseAnInterfaceAddressWhenANonLoopbackInterfaceIsUp() throws Exception {
        Set<String> reachable = new HashSet<>();
        for (NetworkInterface n : Collections.list(NetworkInterface.getNetworkInterfaces())) {
            if (n.isUp() && !n.isLoopback()) {
                for (InetAddress a : Collections.list(n.getInetAddresses())) {
                    if (!a.isLinkLocalAddress() && !a.isLoopbackAddress()) {
                        reachable.add(a.getHostAddress());
                    }
                }
            }
        }
        assumeTrue(!reachable.isEmpty(), "this machine has no non-loopback interface that is up");

        EngineConfig config =
                EngineConfig.builder()
                        .environment(Map.of())
                        .protocol(InMemoryTransportProvider.PROTOCOL)
                        .rpcPortRange(0, 0)
                        .build();
        try (TransferEngine engine = TransferEngine.create(config)) {
            String name = engine.localSegmentName();
            String host = name.substring(0, name.lastIndexOf(':'));

            assertFalse(InetAddress.getByName(host).isLoopbackAddress(), name);
            assertTrue(reachable.contains(host), name + " is not an address of an interface that is up: " + reachable);
        }
    }
}
