package io.mooncake4j.spi;

import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;

/**
 * For transports and engine services: warnings that a peer can trigger at will (refused connections, malformed frames, floods): at
 * most one line per key per interval, so an attacker cannot fill the disk or slow the server with
 * logging. The first line after a quiet interval says how many lines of that key were suppressed
 * since the last one. Keys are a small fixed set chosen by the caller (never a peer's address).
 */
public final class RateLimitedLog {
    private final Logger log;
    private final long intervalNanos;
    private final ConcurrentHashMap<String, Window> windows = new ConcurrentHashMap<>();
    private final LongAdder suppressed = new LongAdder();

    private static final class Window {
        long lastNanos;
        long suppressed;
        boolean used;
    }

    /**
     * @param log where lines go
     * @param interval least time between two lines of the same key
     */
    public RateLimitedLog(Logger log, Duration interval) {
        this.log = Objects.requireNonNull(log, "log");
        this.intervalNanos = interval.toNanos();
        if (intervalNanos < 0) {
            throw new IllegalArgumentException("interval must not be negative, got " + interval);
        }
    }

    /**
     * Logs at WARN unless a line of {@code key} was logged less than the interval ago. As with
     * SLF4J, a {@link Throwable} as the last argument is logged with its stack trace.
     */
    public void warn(String key, String format, Object... args) {
        Window w = windows.computeIfAbsent(key, k -> new Window());
        long now = System.nanoTime();
        long skipped;
        synchronized (w) {
            if (w.used && now - w.lastNanos < intervalNanos) {
                w.suppressed++;
                suppressed.increment();
                return;
            }
            w.used = true;
            w.lastNanos = now;
            skipped = w.suppressed;
            w.suppressed = 0;
        }
        if (skipped == 0) {
            log.warn(format, args);
            return;
        }
        // The count goes before a trailing Throwable, which SLF4J only treats as one when last.
        Object[] withCount = Arrays.copyOf(args, args.length + 1);
        int at = args.length;
        if (at > 0 && args[at - 1] instanceof Throwable) {
            withCount[at] = args[at - 1];
            at--;
        }
        withCount[at] = skipped;
        log.warn(format + " ({} similar lines suppressed before this one)", withCount);
    }

    /** Lines suppressed so far, every key together. */
    public long suppressed() {
        return suppressed.sum();
    }
}
