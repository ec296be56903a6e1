package io.mooncake4j.samples.serving;

import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.JavaCommand;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.cli.StdinWatch;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A {@code mooncake4j} subcommand (a worker or the router) in a child JVM started with this JVM's
 * java and class path. It runs with {@code --exit_on_stdin_close} and its standard input is a pipe
 * from this process, so it exits when this process ends however that happens (even SIGKILL); a
 * shutdown hook also stops every child still running when this JVM exits (Ctrl-C included). The
 * child's output goes to a log file (and, if asked, to this process's stderr with a prefix); the
 * line {@code READY <role> <url> ...} it prints when it serves tells the parent its URL.
 */
public final class ChildJvm implements AutoCloseable {
    /** The prefix of the line a worker prints when it is ready. */
    public static final String READY = "READY ";
    /** The hidden flag that makes a worker exit when its standard input closes. */
    public static final String EXIT_ON_STDIN_CLOSE = "--exit_on_stdin_close";

    private static final Set<ChildJvm> LIVE = ConcurrentHashMap.newKeySet();
    private static final AtomicBoolean HOOK = new AtomicBoolean();

    private final String name;
    private final Process process;
    private final Path log;
    private final CompletableFuture<String> ready = new CompletableFuture<>();
    private final Deque<String> tail = new ArrayDeque<>();
    private final AtomicBoolean closed = new AtomicBoolean();

    private ChildJvm(String name, Process process, Path log) {
        this.name = name;
        this.process = process;
        this.log = log;
    }

    /**
     * Starts {@code mooncake4j <args> --exit_on_stdin_close} in a child JVM.
     *
     * @param name a short name for messages and the log prefix ({@code prefill})
     * @param args the subcommand and its flags
     * @param log the file the child's output goes to
     * @param echo where to copy the child's output, prefixed with its name, or null
     */
    public static ChildJvm start(String name, List<String> args, Path log, PrintStream echo) {
        installHook();
        List<String> cmd = JavaCommand.current();
        cmd.add(Main.class.getName());
        cmd.addAll(args);
        cmd.add(EXIT_ON_STDIN_CLOSE);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        if (System.getenv("DJL_OFFLINE") == null) {
            pb.environment().put("DJL_OFFLINE", "true");
        }
        Process p;
        try {
            Files.createDirectories(log.toAbsolutePath().getParent());
            p = pb.start();
        } catch (IOException e) {
            throw new CommandFailure("cannot start the " + name + " JVM (" + cmd.get(0) + "): " + e, e);
        }
        ChildJvm child = new ChildJvm(name, p, log);
        LIVE.add(child);
        Thread reader = new Thread(() -> child.pump(echo), "mooncake4j-child-" + name);
        reader.setDaemon(true);
        reader.start();
        return child;
    }


    private void pump(PrintStream echo) {
        try (BufferedReader in = new BufferedReader(new InputStreamReader(process.getInputStream(),
                        StandardCharsets.UTF_8));
                Writer out = Files.newBufferedWriter(log, StandardCharsets.UTF_8)) {
            String line;
            while ((line = in.readLine()) != null) {
                out.write(line);
                out.write('\n');
                out.flush();
                synchronized (tail) {
                    tail.addLast(line);
                    if (tail.size() > 40) {
                        tail.removeFirst();
                    }
                }
                if (line.startsWith(READY)) {
                    ready.complete(line.substring(READY.length()).trim());
                }
                if (echo != null) {
                    echo.println("[" + name + "] " + line);
                }
            }
        } catch (IOException e) {
            // the child ended
        }
        ready.completeExceptionally(new CommandFailure("the " + name + " JVM exited"
                + (process.isAlive() ? "" : " with code " + exitCode()) + " before it was ready; its last output:\n"
                + output()));
    }

    private String exitCode() {
        try {
            return Integer.toString(process.waitFor(2, TimeUnit.SECONDS) ? process.exitValue() : -1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "?";
        }
    }

    /**
     * Waits for the {@code READY} line and returns the URL on it.
     *
     * @throws CommandFailure when the child exits first or does not get ready in time (it is then stopped)
     */
    public String awaitReady(Duration timeout) {
        try {
            String line = ready.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            for (String word : line.split("\\s+")) {
                if (word.startsWith("http://") || word.startsWith("https://")) {
                    return word;
                }
            }
            throw new CommandFailure("the " + name + " JVM printed no URL on its READY line: " + line);
        } catch (ExecutionException e) {
            close();
            throw e.getCause() instanceof CommandFailure cf ? cf : new CommandFailure(e.getCause().toString(), e);
        } catch (TimeoutException e) {
            close();
            throw new CommandFailure("the " + name + " JVM was not ready after " + timeout.toSeconds()
                    + " s; its last output:\n" + output());
        } catch (InterruptedException e) {
            close();
            Thread.currentThread().interrupt();
            throw new CommandFailure("interrupted while starting the " + name + " JVM");
        }
    }

    /** The child's last lines of output. */
    public String output() {
        synchronized (tail) {
            return String.join("\n", tail);
        }
    }

    /** The name given at start. */
    public String name() {
        return name;
    }

    /** The child's process id. */
    public long pid() {
        return process.pid();
    }

    /** Whether the child still runs. */
    public boolean isAlive() {
        return process.isAlive();
    }

    /** The log file. */
    public Path log() {
        return log;
    }

    /**
     * Stops the child: closes its standard input (it shuts down cleanly), then SIGTERM, then
     * SIGKILL, waiting a few seconds at each step; its own children go the same way. Idempotent.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            List<ProcessHandle> descendants = process.descendants().toList();
            try {
                process.getOutputStream().close();
            } catch (IOException e) {
                // already gone
            }
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroy();
                if (!process.waitFor(5, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    process.waitFor(5, TimeUnit.SECONDS);
                }
            }
            for (ProcessHandle h : descendants) {
                h.destroyForcibly();
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        } finally {
            LIVE.remove(this);
        }
    }

    /** Stops several children at once (in parallel, so shutdown takes one child's time). */
    public static void closeAll(List<ChildJvm> children) {
        List<Thread> threads = new ArrayList<>();
        for (ChildJvm c : children) {
            if (c != null) {
                Thread t = new Thread(c::close, "mooncake4j-stop-" + c.name);
                t.start();
                threads.add(t);
            }
        }
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private static void installHook() {
        if (HOOK.compareAndSet(false, true)) {
            Runtime.getRuntime().addShutdownHook(new Thread(() -> closeAll(List.copyOf(LIVE)), "mooncake4j-children"));
        }
    }

    /**
     * Makes this process exit when its standard input closes (the parent ended): what {@link
     * #EXIT_ON_STDIN_CLOSE} turns on in a worker. {@code onClose} runs on a daemon thread.
     */
    public static void watchStdin(Runnable onClose) {
        StdinWatch.onClose(System.in, onClose);
    }

    @Override
    public String toString() {
        return name + " (pid " + process.pid() + ")";
    }
}
