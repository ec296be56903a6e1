package io.mooncake4j.internal;

import io.mooncake4j.spi.RateLimitedLog;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.ToLongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One thread that ends in-flight work at its deadline. Work is tracked per batch, not per request,
 * in a table of slots: {@link #add} returns the slot, which the owner passes back to {@link
 * #remove}, so that tracking allocates nothing in steady state (freed slots are reused). The table
 * is scanned every tick; for work whose deadline passed, {@code expire} runs on this thread (and
 * decides itself whether the work is still in flight: it may end at the same moment).
 *
 * @param <T> the tracked work
 */
public final class DeadlineWatchdog<T> implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DeadlineWatchdog.class);
    private static final VarHandle SLOTS = MethodHandles.arrayElementVarHandle(Object[].class);

    private final ToLongFunction<T> deadline;
    private final Consumer<T> expire;
    private final long tickNanos;
    private final Thread thread;
    private final Object lock = new Object();
    private volatile Object[] slots = new Object[64]; // replaced, never shrunk, under lock
    private int[] free = new int[64]; // freed slots, under lock
    private int freeCount;
    private int highWater; // slots [0, highWater) have been handed out at least once
    private volatile boolean running = true;
    private final RateLimitedLog failures = new RateLimitedLog(LOG, Duration.ofSeconds(30));

    public DeadlineWatchdog(String name, long tickNanos, ToLongFunction<T> deadline, Consumer<T> expire) {
        this.deadline = deadline;
        this.expire = expire;
        this.tickNanos = tickNanos;
        this.thread = new Thread(this::run, name);
        this.thread.setDaemon(true);
        this.thread.start();
    }

    /** Tracks {@code work}; returns its slot, for {@link #remove}. */
    public int add(T work) {
        synchronized (lock) {
            int slot;
            if (freeCount > 0) {
                slot = free[--freeCount];
            } else {
                slot = highWater++;
                if (slot == slots.length) {
                    slots = Arrays.copyOf(slots, slot * 2);
                    free = Arrays.copyOf(free, slot * 2);
                }
            }
            SLOTS.setRelease(slots, slot, work);
            return slot;
        }
    }

    /** Stops tracking {@code work}, which {@link #add} put in {@code slot}; does nothing if it is not there. */
    public void remove(int slot, T work) {
        synchronized (lock) {
            Object[] s = slots;
            if (slot >= 0 && slot < highWater && s[slot] == work) {
                SLOTS.setRelease(s, slot, null);
                free[freeCount++] = slot;
            }
        }
    }

    /** A snapshot of the tracked work. */
    public List<T> active() {
        List<T> out = new ArrayList<>();
        Object[] s = slots;
        for (int i = 0; i < s.length; i++) {
            @SuppressWarnings("unchecked")
            T w = (T) SLOTS.getAcquire(s, i);
            if (w != null) {
                out.add(w);
            }
        }
        return out;
    }

    private void run() {
        while (running) {
            try {
                TimeUnit.NANOSECONDS.sleep(tickNanos);
            } catch (InterruptedException e) {
                if (!running) {
                    return;
                }
            }
            long now = System.nanoTime();
            Object[] s = slots;
            for (int i = 0; i < s.length; i++) {
                @SuppressWarnings("unchecked")
                T work = (T) SLOTS.getAcquire(s, i);
                if (work != null && now - deadline.applyAsLong(work) >= 0) {
                    try {
                        expire.accept(work);
                    } catch (Throwable t) {
                        // This thread must outlive any failure (an OutOfMemoryError included), or
                        // no deadline would be enforced again.
                        failures.warn("expire", "expiring {} failed; deadlines are still enforced", work, t);
                    }
                }
            }
        }
    }

    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
