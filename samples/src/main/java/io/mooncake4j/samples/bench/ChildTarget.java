package io.mooncake4j.samples.bench;

import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.JavaCommand;
import io.mooncake4j.samples.cli.Main;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A bench target in a child JVM, started with this JVM's java and class path: {@code java -cp
 * <java.class.path> io.mooncake4j.samples.cli.Main bench --mode=target --segment_file=... ...}. Its
 * standard input is a pipe from this process and it runs with {@code --exit_on_stdin_close}, so it
 * exits when this process does, however that happens. Output goes to a log file, quoted in the
 * error when the target does not start.
 */
public final class ChildTarget implements AutoCloseable {
    private final Process process;
    private final Path dir;
    private final Path log;
    private final String segmentId;

    private ChildTarget(Process process, Path dir, Path log, String segmentId) {
        this.process = process;
        this.dir = dir;
        this.log = log;
        this.segmentId = segmentId;
    }

    /**
     * Starts a target and waits until it has written its segment name.
     *
     * @param targetArgs more {@code bench} arguments ({@code --protocol=tcp}, {@code --buffer_size=4M})
     * @throws CommandFailure when it exits or does not become ready within {@code startTimeout}
     */
    public static ChildTarget start(List<String> targetArgs, Duration startTimeout) {
        Path dir;
        try {
            dir = Files.createTempDirectory("mooncake4j-target-");
        } catch (IOException e) {
            throw new CommandFailure("cannot create a directory for the spawned target: " + e, e);
        }
        Path segmentFile = dir.resolve("segment");
        Path log = dir.resolve("target.log");
        List<String> cmd = JavaCommand.current();
        cmd.add(Main.class.getName());
        cmd.add("bench");
        cmd.add("--mode=target");
        cmd.add("--segment_file=" + segmentFile);
        cmd.add("--exit_on_stdin_close");
        cmd.addAll(targetArgs);
        Process p;
        try {
            p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        } catch (IOException e) {
            throw new CommandFailure("cannot start the target JVM (" + cmd.get(0) + "): " + e, e);
        }
        long deadline = System.nanoTime() + startTimeout.toNanos();
        try {
            while (true) {
                if (Files.isRegularFile(segmentFile)) {
                    String name = Files.readString(segmentFile, StandardCharsets.UTF_8).trim();
                    if (!name.isEmpty()) {
                        return new ChildTarget(p, dir, log, name);
                    }
                }
                if (!p.isAlive()) {
                    throw new CommandFailure("the spawned target exited with code " + p.exitValue()
                            + " before it was ready; its output:\n" + tail(log));
                }
                if (System.nanoTime() > deadline) {
                    throw new CommandFailure("the spawned target was not ready after " + startTimeout.toSeconds()
                            + " s; its output:\n" + tail(log));
                }
                Thread.sleep(50);
            }
        } catch (IOException | InterruptedException | RuntimeException e) {
            stop(p);
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
            if (e instanceof CommandFailure cf) {
                throw cf;
            }
            throw new CommandFailure("waiting for the spawned target failed: " + e, e);
        }
    }

    /** The target's segment name, to pass as {@code --segment_id}. */
    public String segmentId() {
        return segmentId;
    }

    /** The child process. */
    public Process process() {
        return process;
    }

    /** The target's output so far. */
    public String output() {
        return tail(log);
    }

    /** Stops the target (end of stdin, then SIGTERM, then SIGKILL) and removes its files. Idempotent. */
    @Override
    public void close() {
        stop(process);
        try {
            Files.deleteIfExists(dir.resolve("segment"));
            Files.deleteIfExists(log);
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            // a leftover temp file is harmless
        }
    }

    private static void stop(Process p) {
        try {
            p.getOutputStream().close();
            if (!p.waitFor(5, TimeUnit.SECONDS)) {
                p.destroy();
                if (!p.waitFor(5, TimeUnit.SECONDS)) {
                    p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                }
            }
        } catch (IOException e) {
            p.destroyForcibly();
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    private static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
        } catch (IOException e) {
            return "(no output: " + e + ")";
        }
    }
}
