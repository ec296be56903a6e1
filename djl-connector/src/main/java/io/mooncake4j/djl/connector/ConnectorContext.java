package io.mooncake4j.djl.connector;

import ai.djl.ndarray.NDManager;
import com.google.gson.JsonObject;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.kv.BlockAllocator;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.PagedKvCache;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.Executor;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a connector's prefill and decode sides share: its id, the pool and its blocks, the I/O
 * threads and the timer, the counters, and sending messages to peers.
 */
final class ConnectorContext {
    private static final Logger LOG = LoggerFactory.getLogger(ConnectorContext.class);
    private static final AtomicInteger THREADS = new AtomicInteger();

    final String id = "kv-" + UUID.randomUUID();
    final TransferEngine engine;
    final PagedKvPool pool;
    final KvLayout layout;
    final BlockAllocator allocator;
    final KvConnectorConfig config;
    final NDManager manager;
    final ConnectorCounters counters = new ConnectorCounters();
    final BlockTransfers transfers;
    final SenderCheck senders;
    private final ThreadPoolExecutor ioPool;
    private final Executor io;
    private final ScheduledThreadPoolExecutor timer;
    private final AtomicBoolean closed = new AtomicBoolean();

    ConnectorContext(PagedKvPool pool, KvConnectorConfig config, NDManager parent) {
        this.engine = pool.engine();
        this.pool = pool;
        this.layout = pool.layout();
        this.allocator = pool.allocator();
        this.config = config;
        this.senders = new SenderCheck(counters.messagesRefused, engine.authenticatesPeers());
        ThreadFactory tf = r -> {
            Thread t = new Thread(r, "mooncake4j-kv-" + THREADS.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
        this.ioPool = new ThreadPoolExecutor(config.ioThreads(), config.ioThreads(), 30, TimeUnit.SECONDS,
                new LinkedBlockingQueue<>(), tf);
        this.ioPool.allowCoreThreadTimeOut(true);
        this.io = task -> {
            try {
                ioPool.execute(task);
            } catch (RejectedExecutionException e) {
                task.run();
            }
        };
        this.transfers = new BlockTransfers(pool, counters, io);
        this.timer = new ScheduledThreadPoolExecutor(1, tf);
        this.timer.setRemoveOnCancelPolicy(true);
        this.manager = parent.newSubManager();
    }

    /** The I/O threads (the caller runs the task once they have stopped). */
    Executor io() {
        return io;
    }

    ScheduledFuture<?> schedule(Runnable task, Duration delay) {
        return timer.schedule(task, delay.toNanos(), TimeUnit.NANOSECONDS);
    }

    void every(Runnable task, long periodMillis) {
        timer.scheduleWithFixedDelay(task, periodMillis, periodMillis, TimeUnit.MILLISECONDS);
    }

    boolean isClosed() {
        return closed.get();
    }

    /** Marks the connector closed; false when it was already. */
    boolean markClosed() {
        return closed.compareAndSet(false, true);
    }

    void ensureOpen() {
        if (closed.get()) {
            throw new KvException(KvError.CLOSED, "KV connector " + id + " is closed");
        }
    }

    /** Allocates blocks, waiting up to {@code wait} for them; gives up when the connector closes. */
    int[] allocate(int n, Duration wait) {
        int[] blocks = allocator.allocate(n, wait, () -> closed.get() || pool.isClosed());
        if (closed.get()) {
            allocator.release(blocks);
            throw new KvException(KvError.CLOSED, "KV connector " + id + " is closed");
        }
        return blocks;
    }

    /** A cache over {@code blocks} for the model; releases the blocks when that fails. */
    PagedKvCache cache(int[] blocks) {
        try {
            return pool.cache(blocks, manager);
        } catch (RuntimeException e) {
            allocator.release(blocks);
            throw e;
        }
    }

    /** Sends a message to a peer's connector from an I/O thread; a failure is counted, not thrown. */
    void notifyPeer(String segment, KvMessage.Type type, String to, String requestId, JsonObject body) {
        String text = new KvMessage(type, to, id, requestId, body).encode();
        io.execute(() -> {
            try {
                engine.sendNotification(segment, text);
            } catch (RuntimeException e) {
                counters.notificationsFailed.incrementAndGet();
                LOG.debug("could not send {} for {} to {}: {}", type, requestId, segment, e.toString());
            }
        });
    }

    static JsonObject reasonBody(String reason) {
        JsonObject o = new JsonObject();
        o.addProperty("reason", reason);
        return o;
    }

    static JsonObject statsBody(KvTransferStats s) {
        JsonObject o = new JsonObject();
        o.add("stats", s.toJson());
        return o;
    }

    /** Stops the timer, lets queued I/O tasks finish (bounded by the handshake timeout), closes the arrays. */
    void shutdown() {
        timer.shutdownNow();
        ioPool.shutdown();
        try {
            if (!ioPool.awaitTermination(engine.config().handshakeTimeout().toMillis() + 1000, TimeUnit.MILLISECONDS)) {
                ioPool.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            ioPool.shutdownNow();
        }
        manager.close();
    }
}
