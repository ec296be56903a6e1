package io.mooncake4j.samples.serving;

import java.io.PrintWriter;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine.Option;

/**
 * The flags of the three servers ({@code router}, {@code prefill}, {@code decode}) and how they run
 * until stopped: Ctrl-C / SIGTERM, or the end of standard input with {@code
 * --exit_on_stdin_close} (how the demo's children follow their parent).
 */
public final class ServerOptions {
    @Option(names = "--host", paramLabel = "ADDR",
            description = "Address to listen on. Default: 0.0.0.0 (every interface).")
    String host = "0.0.0.0";

    @Option(names = "--port", paramLabel = "PORT",
            description = "HTTP port; 0 picks a free one. Default: 8000 (router), 8100 (prefill), 8200 (decode).")
    Integer port;

    @Option(names = "--http_threads", paramLabel = "N",
            description = "Threads serving requests (one per request in flight). Default: 64.")
    int httpThreads = 64;

    @Option(names = ChildJvm.EXIT_ON_STDIN_CLOSE, hidden = true,
            description = "Exit when standard input closes (set by the parent that started this process).")
    boolean exitOnStdinClose;

    /** The port, or {@code dflt} when not given. */
    int port(int dflt) {
        return port == null ? dflt : port;
    }

    /**
     * Blocks until the process is asked to stop, then runs {@code shutdown} once (also from the
     * shutdown hook when the JVM is terminated).
     */
    void serveUntilStopped(PrintWriter err, Runnable shutdown) {
        CountDownLatch stop = new CountDownLatch(1);
        AtomicBoolean done = new AtomicBoolean();
        Runnable once = () -> {
            if (done.compareAndSet(false, true)) {
                shutdown.run();
            }
        };
        Thread hook = new Thread(() -> {
            stop.countDown();
            once.run();
        }, "mooncake4j-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        if (exitOnStdinClose) {
            ChildJvm.watchStdin(stop::countDown);
        }
        try {
            stop.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        err.println("shutting down");
        err.flush();
        once.run();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // the JVM is already shutting down
        }
    }
}
