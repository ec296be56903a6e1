package io.mooncake4j.samples.bench;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.atomic.LongAdder;

/**
 * A progress line per second on stderr during a timed run: elapsed time, then throughput and
 * requests per second over the last second.
 */
final class Progress implements AutoCloseable {
    private final Thread thread;
    private volatile boolean closed;

    private Progress(Runnable body) {
        thread = new Thread(body, "bench-progress");
        thread.setDaemon(true);
    }

    /** Starts printing; {@link #close()} stops. */
    static Progress start(PrintWriter out, long startNanos, double seconds, LongAdder requests, long blockSize,
            ReportUnit unit) {
        Progress[] self = new Progress[1];
        self[0] = new Progress(() -> {
            long lastNanos = startNanos;
            long lastRequests = 0;
            long next = startNanos + 1_000_000_000L;
            while (!self[0].closed) {
                long wait = next - System.nanoTime();
                if (wait > 0) {
                    try {
                        Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                    } catch (InterruptedException e) {
                        return;
                    }
                    continue;
                }
                long now = System.nanoTime();
                long r = requests.sum();
                double dt = (now - lastNanos) / 1e9;
                out.println(line((now - startNanos) / 1e9, seconds, (r - lastRequests) * blockSize / dt / unit.bytes(),
                        unit, (r - lastRequests) / dt));
                out.flush();
                lastNanos = now;
                lastRequests = r;
                next += 1_000_000_000L;
            }
        });
        self[0].thread.start();
        return self[0];
    }

    static String line(double elapsed, double total, double rate, ReportUnit unit, double requestsPerSecond) {
        return String.format(Locale.ROOT, "progress: %3.0f/%.0f s  %10.2f %s/s  %12.0f req/s",
                elapsed, total, rate, unit.name(), requestsPerSecond);
    }

    @Override
    public void close() {
        closed = true;
        thread.interrupt();
        try {
            thread.join(1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
