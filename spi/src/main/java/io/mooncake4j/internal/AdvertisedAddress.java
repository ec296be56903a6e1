package io.mooncake4j.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The address an engine advertises when {@code MOONCAKE_LOCAL_HOSTNAME} is unset: the address the
 * host name resolves to, unless that is a loopback address (many distributions map the host name to
 * 127.0.0.1 or 127.0.1.1 in {@code /etc/hosts}), in which case peers on other hosts could not reach
 * it. Then, as Spark's {@code Utils.findLocalInetAddress} and Hadoop do, it takes the address of a
 * non-loopback interface: the one that carries the default route first ({@code /proc/net/route}),
 * else the first interface that is up, IPv4 preferred, link-local addresses skipped. Loopback is
 * advertised only when no other interface has an address.
 *
 * <p>The choice is made once per JVM and logged once, with the reason.
 */
public final class AdvertisedAddress {
    private static final Logger LOG = LoggerFactory.getLogger(AdvertisedAddress.class);
    private static final Path ROUTES = Path.of("/proc/net/route");

    private AdvertisedAddress() {}

    /** What the choice reads about this host; injectable so that tests can describe any host. */
    interface Network {
        /** The address the local host name resolves to. */
        InetAddress hostAddress() throws UnknownHostException;

        /** The name of the interface carrying the IPv4 default route, if any. */
        Optional<String> defaultRouteInterface();

        /** The interfaces in the system's order. */
        List<Interface> interfaces();
    }

    /** One network interface as the choice sees it. */
    record Interface(String name, boolean up, boolean loopback, List<InetAddress> addresses) {}

    /** The chosen address and why it was chosen, for the log. */
    record Choice(InetAddress address, String reason) {}

    /** The address to advertise on this host (an IP literal), chosen and logged once per JVM. */
    public static String detect() {
        return Holder.ADDRESS;
    }

    private static final class Holder {
        static final String ADDRESS = chooseAndLog();

        private static String chooseAndLog() {
            Choice c = choose(SystemNetwork.INSTANCE);
            if (c.address().isLoopbackAddress()) {
                LOG.warn(
                        "Advertising {}: {}. Peers on other hosts cannot reach this engine; set"
                                + " MOONCAKE_LOCAL_HOSTNAME to an address they can reach",
                        c.address().getHostAddress(),
                        c.reason());
            } else {
                LOG.info(
                        "Advertising {}: {} (set MOONCAKE_LOCAL_HOSTNAME to choose another)",
                        c.address().getHostAddress(),
                        c.reason());
            }
            return c.address().getHostAddress();
        }
    }

    /** Chooses the address to advertise on the host that {@code net} describes. */
    static Choice choose(Network net) {
        InetAddress host;
        String resolved;
        try {
            host = net.hostAddress();
            resolved = "the host name resolves to " + host.getHostAddress();
        } catch (UnknownHostException e) {
            host = null;
            resolved = "the host name does not resolve (" + e.getMessage() + ")";
        }
        if (host != null && !host.isLoopbackAddress()) {
            return new Choice(host, resolved);
        }
        Optional<String> routed = net.defaultRouteInterface();
        List<Interface> candidates = new ArrayList<>();
        for (Interface i : net.interfaces()) {
            if (i.up() && !i.loopback()) {
                candidates.add(i);
            }
        }
        if (routed.isPresent()) {
            for (Interface i : candidates) {
                Optional<InetAddress> a = usableAddress(i);
                if (i.name().equals(routed.get()) && a.isPresent()) {
                    return new Choice(
                            a.get(),
                            resolved + ", so the address of " + i.name()
                                    + ", the interface with the default route, is used instead");
                }
            }
        }
        for (Interface i : candidates) {
            Optional<InetAddress> a = usableAddress(i);
            if (a.isPresent()) {
                return new Choice(
                        a.get(),
                        resolved + " and no interface carries a default route, so the address of "
                                + i.name() + ", the first interface that is up, is used instead");
            }
        }
        InetAddress loopback = host != null ? host : InetAddress.getLoopbackAddress();
        return new Choice(loopback, resolved + " and no interface other than loopback has an address");
    }

    /** The interface's first IPv4 address, else its first IPv6 one; never link-local or loopback. */
    private static Optional<InetAddress> usableAddress(Interface i) {
        InetAddress v6 = null;
        for (InetAddress a : i.addresses()) {
            if (a.isLoopbackAddress() || a.isLinkLocalAddress() || a.isAnyLocalAddress()) {
                continue;
            }
            if (a instanceof Inet4Address) {
                return Optional.of(a);
            }
            if (v6 == null) {
                v6 = a;
            }
        }
        return Optional.ofNullable(v6);
    }

    /**
     * The interface of the IPv4 default route in {@code /proc/net/route} (destination and mask 0,
     * flag RTF_UP), the lowest metric winning; empty when there is none.
     */
    static Optional<String> defaultRouteInterface(List<String> routeTable) {
        String best = null;
        long bestMetric = Long.MAX_VALUE;
        for (String line : routeTable.subList(Math.min(1, routeTable.size()), routeTable.size())) {
            String[] f = line.trim().split("\\s+");
            if (f.length < 8) {
                continue;
            }
            try {
                boolean isDefault = Long.parseLong(f[1], 16) == 0 && Long.parseLong(f[7], 16) == 0;
                boolean up = (Integer.parseInt(f[3], 16) & 0x1) != 0;
                long metric = Long.parseLong(f[6]);
                if (isDefault && up && metric < bestMetric) {
                    best = f[0];
                    bestMetric = metric;
                }
            } catch (NumberFormatException e) {
                // Not a route line (a header of another format): skip it.
            }
        }
        return Optional.ofNullable(best);
    }

    /** The real host: its resolver, {@code /proc/net/route} and {@link NetworkInterface}. */
    enum SystemNetwork implements Network {
        INSTANCE;

        @Override
        public InetAddress hostAddress() throws UnknownHostException {
            return InetAddress.getLocalHost();
        }

        @Override
        public Optional<String> defaultRouteInterface() {
            try {
                return AdvertisedAddress.defaultRouteInterface(
                        Files.readAllLines(ROUTES, StandardCharsets.US_ASCII));
            } catch (NoSuchFileException e) {
                return Optional.empty(); // not Linux: fall back to interface order
            } catch (IOException | UncheckedIOException e) {
                LOG.debug("cannot read {}", ROUTES, e);
                return Optional.empty();
            }
        }

        @Override
        public List<Interface> interfaces() {
            List<Interface> out = new ArrayList<>();
            try {
                for (NetworkInterface n : Collections.list(NetworkInterface.getNetworkInterfaces())) {
                    try {
                        out.add(
                                new Interface(
                                        n.getName(),
                                        n.isUp(),
                                        n.isLoopback(),
                                        Collections.list(n.getInetAddresses())));
                    } catch (SocketException e) {
                        LOG.debug("cannot query interface {}", n.getName(), e);
                    }
                }
            } catch (SocketException e) {
                LOG.debug("cannot list network interfaces", e);
            }
            return out;
        }
    }
}
