package io.mooncake4j.samples.fault;

import io.mooncake4j.samples.cli.JavaCommand;
import io.mooncake4j.testkit.ProcessSignals;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A {@link GuardedTarget} in a child JVM (optionally inside a network namespace), and the faults
 * the tests inflict on it: SIGSTOP/SIGCONT (a peer that accepts but never answers) and SIGKILL.
 * Its standard input is a pipe from this JVM, so it also ends when the test JVM does.
 */
final class FaultPeer implements AutoCloseable {
    static final Duration START_TIMEOUT = Duration.ofSeconds(60);
    private final Process process;
    private final BlockingQueue<String> lines;
    private final String segment;
    private final long bufferAddress;
    private final int guard;
    private final int window;

    private FaultPeer(Process process, BlockingQueue<String> lines, String readyLine, int guard, int window) {
        this.process = process;
        this.lines = lines;
        String[] w = readyLine.split(" ");
        this.segment = w[1];
        this.bufferAddress = Long.parseLong(w[2]);
        this.guard = guard;
        this.window = window;
    }

    /**
     * Starts a target and waits for its READY line.
     *
     * @param prefix what the java command runs under ({@code ip netns exec <ns>}), or empty
     * @param port the handshake port, or 0 for any free one
     * @param device the NIC its transports use ({@code MOONCAKE_DEVICE}), or null for the default
     */
    static FaultPeer start(List<String> prefix, String protocol, String host, String device, int guard, int window,
            int port) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(prefix);
        cmd.addAll(JavaCommand.current());
        cmd.add(GuardedTarget.class.getName());
        cmd.addAll(List.of(protocol, host, Integer.toString(guard), Integer.toString(window), Integer.toString(port)));
        if (device != null) {
            cmd.add(device);
        }
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        Thread pump = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String l;
                while ((l = r.readLine()) != null) {
                    lines.add(l);
                }
            } catch (IOException e) {
                // the child ended
            }
        }, "fault-peer-" + p.pid());
        pump.setDaemon(true);
        pump.start();
        String ready = awaitLine(lines, "READY ", START_TIMEOUT, p);
        if (ready == null) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            throw new IllegalStateException("the guarded target did not print READY within " + START_TIMEOUT
                    + " (alive: " + p.isAlive() + "); see its stderr above; command: " + cmd);
        }
        return new FaultPeer(p, lines, ready, guard, window);
    }

    private static String awaitLine(BlockingQueue<String> lines, String prefix, Duration timeout, Process p)
            throws InterruptedException {
        long end = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < end) {
            String l = lines.poll(100, TimeUnit.MILLISECONDS);
            if (l != null && l.startsWith(prefix)) {
                return l;
            }
            if (l == null && !p.isAlive() && lines.isEmpty()) {
                return null;
            }
        }
        return null;
    }

    /** The segment name ({@code host:port}). */
    String segment() {
        return segment;
    }

    /** The handshake port, from the segment name. */
    int port() {
        return Integer.parseInt(segment.substring(segment.lastIndexOf(':') + 1));
    }

    /** The window's first byte, an address in the target process. */
    long windowAddress() {
        return bufferAddress + guard;
    }

    int windowLength() {
        return window;
    }

    /** Asks the target to check its canaries: "intact", or where one changed. */
    String guards() throws IOException, InterruptedException {
        OutputStream in = process.getOutputStream();
        in.write("guards\n".getBytes(StandardCharsets.US_ASCII));
        in.flush();
        String l = awaitLine(lines, "GUARDS ", Duration.ofSeconds(20), process);
        if (l == null) {
            throw new IllegalStateException("the target did not answer 'guards' (alive: " + process.isAlive() + ")");
        }
        return l.substring("GUARDS ".length());
    }

    /**
     * SIGSTOP, and waits until every thread of the process is stopped: then the kernel still accepts
     * connections and data, the process never answers.
     */
    void stop() throws IOException, InterruptedException {
        ProcessSignals.stop(process);
    }

    /** SIGCONT. */
    void resume() throws IOException, InterruptedException {
        ProcessSignals.resume(process);
    }

    /** SIGKILL, and waits until the process is gone (its sockets closed by the kernel). */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("pid " + process.pid() + " survived SIGKILL for 30 s");
        }
    }

    boolean isAlive() {
        return process.isAlive();
    }

    /** Resumes a stopped target, ends its input (it exits), then kills it if it lingers. Idempotent. */
    @Override
    public void close() throws IOException, InterruptedException {
        if (!process.isAlive()) {
            return;
        }
        ProcessSignals.resume(process);
        try {
            process.getOutputStream().close();
        } catch (IOException e) {
            // already gone
        }
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }
}
