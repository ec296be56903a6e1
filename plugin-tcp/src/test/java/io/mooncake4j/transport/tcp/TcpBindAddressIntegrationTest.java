package io.mooncake4j.transport.tcp;

import static io.mooncake4j.transport.tcp.TcpTestKit.config;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeContext;
import java.io.IOException;
import java.net.ConnectException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.Socket;
import java.net.SocketException;
import java.util.Collections;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code MC_TCP_BIND_ADDRESS} (issue 7.7): with it, the data port and the handshake port accept
 * connections on that address only; without it, on every interface. Needs a non-loopback IPv4
 * address on this host to connect to (every connection stays on this host).
 */
@Tag("integration")
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class TcpBindAddressIntegrationTest {
    @Test
    void shouldServeTheDataPortOnTheBindAddressOnly() throws Exception {
        InetAddress other = nonLoopbackAddress();
        try (TcpTransport bound = new TcpTransport(new FakeContext(config(EngineConfig.TCP_BIND_ADDRESS, "127.0.0.1")));
                TcpTransport everywhere = new TcpTransport(new FakeContext(config()))) {
            assertTrue(accepts(InetAddress.getLoopbackAddress(), bound.dataPort()));
            assertThrows(ConnectException.class, () -> connect(other, bound.dataPort()));
            assertTrue(accepts(other, everywhere.dataPort()), "unset: every interface, as before");
        }
    }

    @Test
    void shouldServeTheHandshakePortOnTheBindAddressOnly() throws Exception {
        InetAddress other = nonLoopbackAddress();
        EngineConfig config = EngineConfig.builder()
                .environment(Map.of())
                .protocol("tcp")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .set(EngineConfig.TCP_BIND_ADDRESS, "127.0.0.1")
                .build();
        try (TransferEngine engine = TransferEngine.create(config)) {
            assertTrue(accepts(InetAddress.getLoopbackAddress(), engine.rpcPort()));
            assertThrows(ConnectException.class, () -> connect(other, engine.rpcPort()));
        }
    }

    private static boolean accepts(InetAddress address, int port) throws IOException {
        connect(address, port);
        return true;
    }

    private static void connect(InetAddress address, int port) throws IOException {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(address, port), 5000);
        }
    }

    private static InetAddress nonLoopbackAddress() throws SocketException {
        for (NetworkInterface nic : Collections.list(NetworkInterface.getNetworkInterfaces())) {
            if (!nic.isUp() || nic.isLoopback()) {
                continue;
            }
            for (InetAddress a : Collections.list(nic.getInetAddresses())) {
                if (a instanceof Inet4Address && !a.isLoopbackAddress()) {
                    return a;
                }
            }
        }
        assumeTrue(false, "this host has no non-loopback IPv4 address to test the bind address with");
        throw new AssertionError("unreachable");
    }
}
