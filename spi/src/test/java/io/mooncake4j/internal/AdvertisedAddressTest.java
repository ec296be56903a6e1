package io.mooncake4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.internal.AdvertisedAddress.Choice;
import io.mooncake4j.internal.AdvertisedAddress.Interface;
import io.mooncake4j.internal.AdvertisedAddress.Network;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The advertised address chosen on described hosts; no real interface is read. */
class AdvertisedAddressTest {
    private static final Interface LO =
            new Interface("lo", true, true, List.of(ip("127.0.0.1", 127, 0, 0, 1)));
    private static final Interface DOCKER =
            new Interface("docker0", true, false, List.of(ip("172.17.0.1", 172, 17, 0, 1)));
    private static final Interface ETH0 =
            new Interface(
                    "eth0",
                    true,
                    false,
                    List.of(ip6link(), ip("10.1.2.3", 10, 1, 2, 3)));

    @Test
    void shouldUseTheDefaultRouteInterfaceWhenTheHostNameResolvesToLoopback() {
        Choice c = AdvertisedAddress.choose(host(ip("127.0.0.1", 127, 0, 0, 1), "eth0", LO, DOCKER, ETH0));

        assertEquals("10.1.2.3", c.address().getHostAddress());
        assertTrue(c.reason().contains("eth0, the interface with the default route"), c.reason());
    }

    @Test
    void shouldUseTheFirstUpInterfaceWhenNoneCarriesTheDefaultRoute() {
        Interface down = new Interface("eth1", false, false, List.of(ip("10.9.9.9", 10, 9, 9, 9)));
        Choice c = AdvertisedAddress.choose(host(ip("127.0.0.1", 127, 0, 0, 1), null, LO, down, ETH0, DOCKER));

        assertEquals("10.1.2.3", c.address().getHostAddress());
        assertTrue(c.reason().contains("eth0, the first interface that is up"), c.reason());
    }

    @Test
    void shouldAdvertiseLoopbackWhenLoopbackIsTheOnlyInterface() {
        Choice c = AdvertisedAddress.choose(host(ip("127.0.0.1", 127, 0, 0, 1), null, LO));

        assertEquals("127.0.0.1", c.address().getHostAddress());
        assertTrue(c.reason().contains("no interface other than loopback"), c.reason());
    }

    @Test
    void shouldAdvertiseLoopbackWhenNoOtherInterfaceHasAUsableAddress() {
        Interface linkLocalOnly = new Interface("eth0", true, false, List.of(ip6link()));
        Choice c = AdvertisedAddress.choose(host(ip("127.0.0.1", 127, 0, 0, 1), "eth0", LO, linkLocalOnly));

        assertEquals("127.0.0.1", c.address().getHostAddress());
        assertTrue(c.reason().contains("no interface other than loopback"), c.reason());
    }

    @Test
    void shouldKeepTheResolvedAddressWhenItIsNotLoopback() {
        Choice c = AdvertisedAddress.choose(host(ip("192.168.5.6", 192, 168, 5, 6), "eth0", LO, ETH0));

        assertEquals("192.168.5.6", c.address().getHostAddress());
    }

    @Test
    void shouldReplace127011AsDebianMapsTheHostName() {
        Choice c = AdvertisedAddress.choose(host(ip("127.0.1.1", 127, 0, 1, 1), "eth0", LO, ETH0));

        assertEquals("10.1.2.3", c.address().getHostAddress());
        assertTrue(c.reason().startsWith("the host name resolves to 127.0.1.1"), c.reason());
    }

    @Test
    void shouldUseAnInterfaceWhenTheHostNameDoesNotResolve() {
        Choice c = AdvertisedAddress.choose(host(null, "eth0", LO, ETH0));

        assertEquals("10.1.2.3", c.address().getHostAddress());
    }

    @Test
    void shouldFindTheLowestMetricDefaultRouteWhenParsingProcNetRoute() {
        List<String> table =
                List.of(
                        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
                        "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0",
                        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\tFFFFFF00\t0\t0\t0",
                        "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0",
                        "tun0\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0");

        assertEquals(Optional.of("eth0"), AdvertisedAddress.defaultRouteInterface(table));
        assertEquals(Optional.empty(), AdvertisedAddress.defaultRouteInterface(table.subList(0, 1)));
        assertEquals(Optional.empty(), AdvertisedAddress.defaultRouteInterface(List.of()));
    }

    private static Network host(InetAddress resolved, String defaultRoute, Interface... interfaces) {
        return new Network() {
            @Override
            public InetAddress hostAddress() throws UnknownHostException {
                if (resolved == null) {
                    throw new UnknownHostException("vm: Name or service not known");
                }
                return resolved;
            }

            @Override
            public Optional<String> defaultRouteInterface() {
                return Optional.ofNullable(defaultRoute);
            }

            @Override
            public List<Interface> interfaces() {
                return List.of(interfaces);
            }
        };
    }

    private static InetAddress ip(String name, int a, int b, int c, int d) {
        try {
            return InetAddress.getByAddress(name, new byte[] {(byte) a, (byte) b, (byte) c, (byte) d});
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }

    private static InetAddress ip6link() {
        byte[] fe80 = new byte[16];
        fe80[0] = (byte) 0xfe;
        fe80[1] = (byte) 0x80;
        fe80[15] = 1;
        try {
            return InetAddress.getByAddress(fe80);
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }
}
