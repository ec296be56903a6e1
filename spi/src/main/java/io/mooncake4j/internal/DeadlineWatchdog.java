package io.mooncake4j.internal;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.ToLongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One thread that ends in-flight work at its deadline. Work is tracked in a concurrent set (added per
 * batch, not per request) and scanned every tick; expiry runs on this thread.
 *
 * @param <T> the tracked work
 */
public final class DeadlineWatchdog<T> implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DeadlineWatchdog.class);
    private final Set<T> active = ConcurrentHashMap.newKeySet();
    private final ToLongFunction<T> deadline;
    private final Consumer<T> expire;
    private final long tickNanos;
    private final Thread thread;
    private volatile boolean running = true;

    public DeadlineWatchdog(String name, long tickNanos, ToLongFunction<T> deadline, Consumer<T> expire) {
        this.deadline = deadline;
        this.expire = expire;
        this.tickNanos = tickNanos;
        this.thread = new Thread(this::run, name);
        this.thread.setDaemon(true);
        this.thread.start();
    }

    public void add(T work) {
        active.add(work);
    }

    public void remove(T work) {
        active.remove(work);
    }

    /** A snapshot of the tracked work. */
    public Set<T> active() {
        return Set.copyOf(active);
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
            for (T work : active) {
                if (now - deadline.applyAsLong(work) >= 0) {
                    active.remove(work);
                    try {
                        expire.accept(work);
                    } catch (RuntimeException e) {
                        LOG.warn("expiring {} failed", work, e);
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
