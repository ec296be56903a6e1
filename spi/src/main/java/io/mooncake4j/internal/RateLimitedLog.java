package io.mooncake4j.internal;

import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.slf4j.Logger;

/**
 * A WARN line that a peer can trigger at will (a refused connection, a rejected range, a malformed
 * frame): logged at most once per interval, with the number of events suppressed since the last line,
 * so that a flood costs a counter increment and not a disk. Thread safe; allocates nothing when it
 * suppresses.
 *
 * <pre>{@code
 * private static final RateLimitedLog REFUSED = new RateLimitedLog(LOG, Duration.ofSeconds(10));
 * REFUSED.warn("TCP data server: refused a connection from {}: {} connections served", peer, n);
 * }</pre>
 */
public final class RateLimitedLog {
    private final Logger log;
    private final long intervalNanos;
    private final AtomicLong nextNanos;
    private final AtomicLong suppressed = new AtomicLong();
    private final LongSupplier clock;

    /** Logs to {@code log} at most once per {@code interval}. */
    public RateLimitedLog(Logger log, Duration interval) {
        this(log, interval, System::nanoTime);
    }

    RateLimitedLog(Logger log, Duration interval, LongSupplier nanoClock) {
        if (interval.isNegative() || interval.isZero()) {
            throw new IllegalArgumentException("interval must be positive, got " + interval);
        }
        this.log = log;
        this.intervalNanos = interval.toNanos();
        this.clock = nanoClock;
        this.nextNanos = new AtomicLong(nanoClock.getAsLong());
    }

    /**
     * Logs {@code format} (SLF4J {@code {}} placeholders) at WARN if the interval has passed since the
     * last line, adding how many were suppressed meanwhile; otherwise counts it as suppressed. Returns
     * whether it logged. Pass values, not a Throwable: a peer-triggered event needs no stack trace.
     */
    public boolean warn(String format, Object... args) {
        long now = clock.getAsLong();
        long next = nextNanos.get();
        if (now - next < 0 || !nextNanos.compareAndSet(next, now + intervalNanos)) {
            suppressed.incrementAndGet();
            return false;
        }
        long skipped = suppressed.getAndSet(0);
        if (skipped == 0) {
            log.warn(format, args);
        } else if (log.isWarnEnabled()) {
            Object[] withCount = Arrays.copyOf(args, args.length + 1);
            withCount[args.length] = skipped;
            log.warn(format + " ({} similar events not logged in the last interval)", withCount);
        }
        return true;
    }
}
