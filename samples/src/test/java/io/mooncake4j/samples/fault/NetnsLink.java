package io.mooncake4j.samples.fault;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A network namespace {@code mc4jf<pid>} joined to this host's namespace by a veth pair: this
 * side {@value #HOST} ({@code <ns>h}), the namespace's side {@value #PEER} ({@code <ns>p}). The
 * link can be set down and up. Needs root (CAP_NET_ADMIN) and iproute2; {@link #close()} deletes
 * the namespace, which deletes the pair.
 */
final class NetnsLink implements AutoCloseable {
    static final String HOST = "10.79.0.1";
    static final String PEER = "10.79.0.2";
    private final String ns;

    private NetnsLink(String ns) {
        this.ns = ns;
    }

    /**
     * Makes the namespace and the link.
     *
     * @throws IllegalStateException saying why when they cannot be made here (not root, no iproute2)
     */
    static NetnsLink create() {
        NetnsLink l = new NetnsLink("mc4jf" + ProcessHandle.current().pid() % 100000);
        l.delete();
        String[][] steps = {
            {"ip", "netns", "add", l.ns},
            {"ip", "link", "add", l.ns + "h", "type", "veth", "peer", "name", l.ns + "p"},
            {"ip", "link", "set", l.ns + "p", "netns", l.ns},
            {"ip", "addr", "add", HOST + "/24", "dev", l.ns + "h"},
            {"ip", "link", "set", l.ns + "h", "up"},
            {"ip", "-n", l.ns, "addr", "add", PEER + "/24", "dev", l.ns + "p"},
            {"ip", "-n", l.ns, "link", "set", "lo", "up"},
            {"ip", "-n", l.ns, "link", "set", l.ns + "p", "up"},
        };
        for (String[] step : steps) {
            String failure = run(step);
            if (failure != null) {
                l.delete();
                throw new IllegalStateException("cannot make a network namespace here (needs root and iproute2): "
                        + String.join(" ", step) + ": " + failure);
            }
        }
        l.awaitCarrier();
        return l;
    }

    /**
     * Waits (at most 10 s) until this side of the veth has carrier ({@code operstate} up), which
     * comes a moment after both ends are set up: libfabric's tcp provider seems to list only interfaces that
     * are running, so an engine started before that finds no NIC of that name.
     */
    private void awaitCarrier() {
        Path state = Path.of("/sys/class/net", hostDevice(), "operstate");
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        try {
            while (!Files.readString(state).trim().equals("up")) {
                if (System.nanoTime() > end) {
                    throw new IllegalStateException(hostDevice() + " has no carrier 10 s after it was set up");
                }
                TimeUnit.MILLISECONDS.sleep(5);
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + state, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for " + hostDevice(), e);
        }
    }

    /** What runs a command inside the namespace: {@code ip netns exec <ns>}. */
    List<String> exec() {
        return List.of("ip", "netns", "exec", ns);
    }

    /** This side's end of the veth, a NIC name for {@code MOONCAKE_DEVICE}. */
    String hostDevice() {
        return ns + "h";
    }

    /** The namespace's end. */
    String peerDevice() {
        return ns + "p";
    }

    /** Sets the namespace's end of the veth down: packets in flight and new ones are dropped. */
    void down() {
        check(run("ip", "-n", ns, "link", "set", ns + "p", "down"));
    }

    /** Sets it up again. */
    void up() {
        check(run("ip", "-n", ns, "link", "set", ns + "p", "up"));
    }

    @Override
    public void close() {
        delete();
    }

    private void delete() {
        run("ip", "netns", "del", ns);
        run("ip", "link", "del", ns + "h"); // gone with the namespace unless it was never moved there
    }

    private static void check(String failure) {
        if (failure != null) {
            throw new IllegalStateException(failure);
        }
    }

    /** Runs a command; null when it succeeded, else its output. */
    private static String run(String... cmd) {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes()).trim();
            if (!p.waitFor(20, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return "timed out";
            }
            return p.exitValue() == 0 ? null : "exit " + p.exitValue() + ": " + out;
        } catch (IOException e) {
            return e.toString();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted";
        }
    }
}
