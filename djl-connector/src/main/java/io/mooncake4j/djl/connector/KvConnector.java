package io.mooncake4j.djl.connector;

import ai.djl.ndarray.NDManager;
import com.google.gson.JsonObject;
import io.mooncake4j.Opcode;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.kv.BlockAllocator;
import io.mooncake4j.djl.kv.BlockRun;
import io.mooncake4j.djl.kv.BlockRuns;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.KvPart;
import io.mooncake4j.djl.kv.PagedKvCache;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Moves requests' KV caches between prefill and decode workers, Mooncake's way: each worker
 * registers its whole {@link PagedKvPool} once; the decode side allocates blocks and tells the
 * prefill side where they are ({@link KvTransferParams}); the prefill side WRITEs the blocks in one
 * batch, one request per (layer, K/V, run of blocks contiguous on both sides), then notifies decode
 * "done" or "error" through the engine's notifications (push, the default). In pull mode decode
 * READs prefill's blocks and then tells it to free them.
 *
 * <h2>Flows</h2>
 *
 * <ul>
 *   <li><b>Decode first (push).</b> Decode: {@link #expect} allocates blocks; the application
 *       carries {@link DecodeRequest#params()} to the prefill worker, which calls {@link
 *       #startPrefill} with them, runs the model into {@link PrefillRequest#cache()} and calls
 *       {@link PrefillRequest#finish()}: the connector pushes and notifies. Decode: {@link
 *       DecodeRequest#await()}.
 *   <li><b>Prefill first (push or pull).</b> Prefill: {@link #startPrefill} without a destination,
 *       compute, {@link PrefillRequest#finish()} returns source parameters that the application
 *       hands to decode, which calls {@link #fetch}: in push mode it sends prefill its destination
 *       (a {@code dest} notification) and prefill pushes; in pull mode it reads and then releases
 *       prefill's blocks. Results nobody claims expire after {@code MC_KV_UNCLAIMED_TIMEOUT}.
 * </ul>
 *
 * <p>Blocks are reference counted: the request holds them, and every transfer pins them while in
 * flight. Prefill frees its blocks when its batch ends, whatever the status; decode frees them on
 * error or timeout, after a quarantine when the peer may still be writing ({@link
 * DecodeRequest#cancel(boolean) cancel(false)} skips it for a destination that never left this
 * process). When the pool is full, {@link #expect}, {@link #fetch} and {@link #startPrefill} wait
 * for blocks up to a given time ({@code MC_KV_ALLOC_WAIT} by default, 0: not at all), first come,
 * first served. Many requests may run at once. One connector per pool; connectors may share an
 * engine.
 */
public final class KvConnector implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KvConnector.class);
    private static final AtomicInteger THREADS = new AtomicInteger();
    /** A push does not start this close to its destination's expiry. */
    private static final long PUSH_START_MARGIN_NANOS = TimeUnit.MILLISECONDS.toNanos(500);

    private final String id;
    private final TransferEngine engine;
    private final PagedKvPool pool;
    private final KvLayout layout;
    private final BlockAllocator allocator;
    private final KvConnectorConfig config;
    private final NDManager manager;
    private final Duration quarantine;
    private final ThreadPoolExecutor ioPool;
    private final Executor io;
    private final ScheduledThreadPoolExecutor timer;
    private final NotificationRouter router;
    private final Map<String, PrefillRequest> prefills = new ConcurrentHashMap<>();
    private final Map<String, PendingDestination> pendingDestinations = new ConcurrentHashMap<>();
    private final Map<String, DecodeRequest> decodes = new ConcurrentHashMap<>();
    private final Map<String, int[]> quarantined = new ConcurrentHashMap<>();
    /** Prefill request ids that ended recently, so a late destination hears so at once. */
    private final Map<String, Long> recentlyEnded = new ConcurrentHashMap<>();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final AtomicLong prefillCompleted = new AtomicLong();
    private final AtomicLong prefillFailed = new AtomicLong();
    private final AtomicLong prefillExpired = new AtomicLong();
    private final AtomicLong decodeCompleted = new AtomicLong();
    private final AtomicLong decodeFailed = new AtomicLong();
    private final AtomicLong bytesSent = new AtomicLong();
    private final AtomicLong bytesReceived = new AtomicLong();
    private final AtomicLong transferRequests = new AtomicLong();
    private final AtomicLong notificationsFailed = new AtomicLong();
    private final AtomicLong quarantines = new AtomicLong();

    private record PendingDestination(KvTransferParams params, long receivedNanos) {}

    private KvConnector(PagedKvPool pool, KvConnectorConfig config, NDManager parent) {
        this.id = "kv-" + UUID.randomUUID();
        this.engine = pool.engine();
        this.pool = pool;
        this.layout = pool.layout();
        this.allocator = pool.allocator();
        this.config = config;
        this.quarantine = config.quarantine(engine.config().transferTimeout());
        this.manager = parent.newSubManager();
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
        this.timer = new ScheduledThreadPoolExecutor(1, tf);
        this.timer.setRemoveOnCancelPolicy(true);
        long sweep = Math.max(10, Math.min(1000, config.unclaimedTimeout().toMillis() / 4));
        this.timer.scheduleWithFixedDelay(this::sweep, sweep, sweep, TimeUnit.MILLISECONDS);
        this.router = NotificationRouter.register(this);
    }

    /**
     * Creates a connector over a pool. The connector takes over the engine's notification queue
     * (shared with other connectors of the same engine).
     *
     * @param pool the pool whose blocks requests use; the caller closes it after the connector
     * @param config timeouts and mode
     * @param manager the parent of the caches' array managers (e.g. the model's manager)
     * @return the connector
     */
    public static KvConnector create(PagedKvPool pool, KvConnectorConfig config, NDManager manager) {
        Objects.requireNonNull(pool, "pool");
        Objects.requireNonNull(config, "config");
        Objects.requireNonNull(manager, "manager");
        if (pool.isClosed()) {
            throw new KvException(KvError.CLOSED, "the KV pool is closed");
        }
        return new KvConnector(pool, config, manager);
    }

    /** This connector's id, which notifications are addressed to. */
    public String id() {
        return id;
    }

    /** The engine of the pool. */
    public TransferEngine engine() {
        return engine;
    }

    /** The pool. */
    public PagedKvPool pool() {
        return pool;
    }

    /** The settings. */
    public KvConnectorConfig config() {
        return config;
    }

    // =============================================================== prefill role

    /**
     * Starts the prefill side of a request: allocates blocks for {@code numTokens} positions.
     *
     * @param requestId the request id (unique among this connector's live prefill requests)
     * @param numTokens the prompt positions the model will compute
     * @param destination the decode side's parameters (decode-first push), or null to wait for the
     *     decode side to claim the result after {@link PrefillRequest#finish()}
     * @return the request, whose {@link PrefillRequest#cache()} the model fills
     * @throws KvException POOL_EXHAUSTED (after waiting up to {@code MC_KV_ALLOC_WAIT}),
     *     LAYOUT_MISMATCH, INVALID_PARAMS, CLOSED (the decode side, if known, is told)
     */
    public PrefillRequest startPrefill(String requestId, int numTokens, KvTransferParams destination) {
        return startPrefill(requestId, numTokens, destination, config.allocWait());
    }

    /**
     * Like {@link #startPrefill(String, int, KvTransferParams)}, waiting up to {@code wait} for
     * free blocks when the pool is full (callers are served in arrival order). With a destination
     * the wait ends no later than the destination's expiry.
     *
     * @param requestId the request id
     * @param numTokens the prompt positions the model will compute
     * @param destination the decode side's parameters, or null
     * @param wait the longest to wait for blocks; zero: fail at once when too few are free
     * @return the request
     * @throws KvException POOL_EXHAUSTED when no blocks were freed in time, LAYOUT_MISMATCH,
     *     INVALID_PARAMS, CLOSED, ABORTED (interrupted); the decode side, if known, is told
     */
    public PrefillRequest startPrefill(String requestId, int numTokens, KvTransferParams destination,
            Duration wait) {
        long received = System.nanoTime();
        try {
            ensureOpen();
            if (requestId == null || requestId.isEmpty()) {
                throw new KvException(KvError.INVALID_PARAMS, "request id is empty");
            }
            if (numTokens <= 0) {
                throw new KvException(KvError.INVALID_PARAMS, "request " + requestId + ": numTokens must be positive");
            }
            if (destination != null) {
                checkDestination(destination, requestId, numTokens);
            }
        } catch (KvException e) {
            if (destination != null) {
                notifyPeer(destination.engine(), KvMessage.Type.ERROR, destination.connector(), destination.requestId(),
                        reasonBody(e.getMessage()));
            }
            throw e;
        }
        int[] blocks;
        try {
            Duration w = wait;
            if (destination != null) {
                long deadline = deadline(received, destination);
                if (deadline != Long.MAX_VALUE) {
                    w = min(w, Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
                }
            }
            blocks = allocate(layout.blocksFor(numTokens), w);
        } catch (KvException e) {
            if (destination != null) {
                notifyPeer(destination.engine(), KvMessage.Type.ERROR, destination.connector(), requestId,
                        reasonBody("prefill worker got no KV blocks: " + e.getMessage()));
            }
            throw e;
        }
        PagedKvCache cache;
        try {
            cache = pool.cache(blocks, manager);
        } catch (RuntimeException e) {
            allocator.release(blocks);
            throw e;
        }
        PrefillRequest r = new PrefillRequest(this, requestId, numTokens, blocks, cache);
        recentlyEnded.remove(requestId);
        if (prefills.putIfAbsent(requestId, r) != null) {
            cache.close();
            allocator.release(blocks);
            throw new KvException(KvError.INVALID_PARAMS, "prefill request " + requestId + " is already in progress");
        }
        PendingDestination pending = pendingDestinations.remove(requestId);
        synchronized (r) {
            if (destination != null) {
                r.destination = destination;
                r.destinationDeadline = deadline(received, destination);
            } else if (pending != null) {
                try {
                    checkDestination(pending.params(), requestId, numTokens);
                    r.destination = pending.params();
                    r.destinationDeadline = deadline(pending.receivedNanos(), pending.params());
                } catch (KvException e) {
                    notifyPeer(pending.params().engine(), KvMessage.Type.ERROR, pending.params().connector(),
                            requestId, reasonBody(e.getMessage()));
                }
            }
        }
        return r;
    }

    /**
     * Allocates blocks, waiting up to {@code wait} for them; gives up when the connector closes.
     */
    private int[] allocate(int n, Duration wait) {
        int[] blocks = allocator.allocate(n, wait, () -> closed.get() || pool.isClosed());
        if (closed.get()) {
            allocator.release(blocks);
            throw new KvException(KvError.CLOSED, "KV connector " + id + " is closed");
        }
        return blocks;
    }

    private static Duration min(Duration a, Duration b) {
        return a.compareTo(b) <= 0 ? a : b;
    }

    /**
     * When a push into a destination must not start any more: the earlier of its relative expiry
     * counted from {@code receivedNanos} and its absolute wall-clock expiry (which also covers the
     * time the request spent queued before it reached this worker), less a margin. Long.MAX_VALUE
     * when it has neither.
     */
    private static long deadline(long receivedNanos, KvTransferParams d) {
        long deadline = Long.MAX_VALUE;
        if (d.expiresInMillis() > 0) {
            deadline = receivedNanos + TimeUnit.MILLISECONDS.toNanos(d.expiresInMillis());
        }
        if (d.expiresAtMillis() > 0) {
            long left = d.expiresAtMillis() - System.currentTimeMillis();
            long byClock = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(left);
            deadline = deadline == Long.MAX_VALUE ? byClock : Math.min(deadline, byClock);
        }
        return deadline == Long.MAX_VALUE ? deadline : deadline - PUSH_START_MARGIN_NANOS;
    }

    private void checkDestination(KvTransferParams d, String requestId, int numTokens) {
        if (d.role() != KvTransferParams.Role.DECODE) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + requestId
                    + ": kv_transfer_params come from a prefill worker, not a decode destination");
        }
        if (d.mode() != TransferMode.PUSH) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + requestId + ": a destination must be push mode");
        }
        if (!d.requestId().equals(requestId)) {
            throw new KvException(KvError.INVALID_PARAMS, "destination is for request " + d.requestId()
                    + ", not " + requestId);
        }
        if (!layout.isCompatible(d.layout())) {
            throw new KvException(KvError.LAYOUT_MISMATCH, "request " + requestId + ": decode layout " + d.layout()
                    + " differs from prefill's " + layout);
        }
        if (d.numTokens() != numTokens) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + requestId + ": decode expects "
                    + d.numTokens() + " prompt positions, prefill computes " + numTokens);
        }
    }

    KvTransferParams finish(PrefillRequest r, TransferMode requested) {
        KvTransferParams dest;
        boolean aborted;
        KvTransferParams source;
        synchronized (r) {
            if (r.state != PrefillRequest.State.COMPUTING) {
                throw new KvException(KvError.INVALID_PARAMS, "prefill request " + r.requestId + " already finished ("
                        + r.state + ")");
            }
            r.readyNanos = System.nanoTime();
            TransferMode mode = r.destination != null ? TransferMode.PUSH : requested != null ? requested : config.mode();
            source = new KvTransferParams(r.requestId, KvTransferParams.Role.PREFILL, mode,
                    engine.localSegmentName(), id, r.numTokens, 0, r.blocks, layout, bases(KvPart.KEY),
                    bases(KvPart.VALUE), config.unclaimedTimeout().toMillis(),
                    System.currentTimeMillis() + config.unclaimedTimeout().toMillis(), null);
            r.source = source;
            aborted = r.abortRequested;
            dest = r.destination;
            r.state = aborted ? r.state : dest != null ? PrefillRequest.State.TRANSFERRING : PrefillRequest.State.READY;
        }
        if (aborted) {
            endPrefill(r, null, new KvException(KvError.ABORTED, "prefill request " + r.requestId + " aborted: "
                    + r.abortReason));
        } else if (dest != null) {
            io.execute(() -> push(r, dest));
        }
        return source;
    }

    private long[] bases(KvPart part) {
        long[] b = new long[layout.layers()];
        for (int l = 0; l < b.length; l++) {
            b[l] = pool.partAddress(l, part);
        }
        return b;
    }

    /** Writes the request's blocks into the destination's; runs on an I/O thread. */
    private void push(PrefillRequest r, KvTransferParams d) {
        int[] pinned = null;
        try {
            long deadline;
            synchronized (r) {
                deadline = r.destinationDeadline;
            }
            if (deadline != Long.MAX_VALUE && System.nanoTime() - deadline > 0) {
                throw new KvException(KvError.EXPIRED, "the decode destination of request " + r.requestId
                        + " expired before prefill finished (MC_KV_WAIT_TIMEOUT on the decode side)");
            }
            int startBlock = d.startToken() / layout.blockTokens();
            int[] src = Arrays.copyOfRange(r.blocks, startBlock, startBlock + d.blockCount());
            List<BlockRun> runs = BlockRuns.coalesce(src, d.blockIds());
            if (runs.isEmpty()) {
                KvTransferStats stats = stats(r.requestId, "prefill", TransferMode.PUSH, d.engine(), r.numTokens,
                        d.startToken(), 0, 0, 0, 0, 0, System.nanoTime() - r.readyNanos);
                endPrefill(r, stats, null);
                notifyPeer(d.engine(), KvMessage.Type.DONE, d.connector(), r.requestId, statsBody(stats));
                return;
            }
            TransferBatch b = blockBatch(Opcode.WRITE, d, runs);
            long bytes = bytesOf(runs);
            allocator.retain(src);
            pinned = src;
            synchronized (r) {
                if (r.abortRequested) {
                    throw new KvException(KvError.ABORTED, "request " + r.requestId + " aborted: " + r.abortReason);
                }
                r.batch = b;
            }
            long t0 = System.nanoTime();
            b.submit();
            transferRequests.addAndGet(b.size());
            int[] pins = src;
            long total = bytes;
            pinned = null;
            b.completion().whenCompleteAsync((done, ex) -> onPushDone(r, d, b, pins, runs, total, t0), io);
        } catch (RuntimeException e) {
            if (pinned != null) {
                allocator.release(pinned);
            }
            KvException k = e instanceof KvException ? (KvException) e
                    : new KvException(KvError.TRANSFER_FAILED, "push of request " + r.requestId + " to " + d.engine()
                            + " failed: " + e.getMessage(), e);
            endPrefill(r, null, k);
            notifyPeer(d.engine(), KvMessage.Type.ERROR, d.connector(), r.requestId, reasonBody(k.getMessage()));
        }
    }

    private void onPushDone(PrefillRequest r, KvTransferParams d, TransferBatch b, int[] pins, List<BlockRun> runs,
            long bytes, long t0) {
        long transfer = System.nanoTime() - t0;
        allocator.release(pins);
        if (b.isAllCompleted()) {
            bytesSent.addAndGet(bytes);
            KvTransferStats stats = stats(r.requestId, "prefill", TransferMode.PUSH, d.engine(), r.numTokens,
                    d.startToken(), pins.length, runs.size(), b.size(), bytes, transfer,
                    System.nanoTime() - r.readyNanos);
            endPrefill(r, stats, null);
            notifyPeer(d.engine(), KvMessage.Type.DONE, d.connector(), r.requestId, statsBody(stats));
        } else {
            String why = failure(b);
            KvException e = new KvException(KvError.TRANSFER_FAILED, "push of request " + r.requestId + " to "
                    + d.engine() + " failed: " + why);
            endPrefill(r, null, e);
            notifyPeer(d.engine(), KvMessage.Type.ERROR, d.connector(), r.requestId, reasonBody(e.getMessage()));
        }
    }

    private static String failure(TransferBatch b) {
        for (int i = 0; i < b.size(); i++) {
            TransferStatus st = b.status(i);
            if (st != TransferStatus.COMPLETED) {
                String reason = b.failureReason(i);
                return "request " + i + " of " + b.size() + " ended " + st + (reason == null ? "" : ": " + reason);
            }
        }
        return "unknown";
    }

    /**
     * Aborts a prefill request. From the application ({@code fromApp}) a computing request ends at
     * once (the application no longer writes its cache); from the decode side it ends at {@link
     * #finish}, since the model may still be writing. A transfer in flight is cancelled and the
     * request ends with its batch.
     */
    void abortPrefill(PrefillRequest r, String reason, boolean fromApp) {
        KvTransferParams dest;
        TransferBatch batch;
        boolean endNow;
        synchronized (r) {
            if (r.state == PrefillRequest.State.ENDED || r.abortRequested) {
                return;
            }
            r.abortRequested = true;
            r.abortReason = reason;
            dest = r.destination;
            batch = r.batch;
            endNow = r.state == PrefillRequest.State.READY || (fromApp && r.state == PrefillRequest.State.COMPUTING);
        }
        if (batch != null) {
            batch.close();
        } else if (endNow) {
            endPrefill(r, null, new KvException(KvError.ABORTED, "prefill request " + r.requestId + " aborted: " + reason));
            if (fromApp && dest != null) {
                notifyPeer(dest.engine(), KvMessage.Type.ERROR, dest.connector(), r.requestId,
                        reasonBody("prefill aborted: " + reason));
            }
        }
    }

    private void endPrefill(PrefillRequest r, KvTransferStats stats, KvException error) {
        synchronized (r) {
            if (r.state == PrefillRequest.State.ENDED) {
                return;
            }
            r.state = PrefillRequest.State.ENDED;
        }
        if (prefills.remove(r.requestId, r)) {
            recentlyEnded.put(r.requestId, System.nanoTime());
        }
        r.cache.close();
        allocator.release(r.blocks);
        if (error == null) {
            prefillCompleted.incrementAndGet();
            r.future.complete(stats);
        } else {
            if (error.error() == KvError.EXPIRED) {
                prefillExpired.incrementAndGet();
            } else {
                prefillFailed.incrementAndGet();
            }
            LOG.debug("prefill request {} ended: {}", r.requestId, error.getMessage());
            r.future.completeExceptionally(error);
        }
    }

    // =============================================================== decode role

    /**
     * Decode first, push: allocates blocks for a request whose KV cache a prefill worker will push
     * here. Carry {@link DecodeRequest#params()} to that worker (it passes them to {@link
     * #startPrefill}), then {@link DecodeRequest#await()}.
     *
     * @param requestId the request id (unique among this connector's waiting requests)
     * @param numTokens the prompt positions
     * @param capacityTokens the positions the generation needs in all (at least {@code numTokens})
     * @param prefixBlocks blocks of this pool already holding positions {@code [0, k * blockTokens)}
     *     (a cached shared prefix; retained for the request, only whole blocks within the prompt
     *     are used), or an empty array
     * @return the request
     * @throws KvException POOL_EXHAUSTED (after waiting up to {@code MC_KV_ALLOC_WAIT}),
     *     INVALID_PARAMS, CLOSED
     */
    public DecodeRequest expect(String requestId, int numTokens, int capacityTokens, int[] prefixBlocks) {
        return expect(requestId, numTokens, capacityTokens, prefixBlocks, config.allocWait());
    }

    /**
     * Like {@link #expect(String, int, int, int[])}, waiting up to {@code wait} for free blocks
     * when the pool is full (callers are served in arrival order). The request's {@code
     * MC_KV_WAIT_TIMEOUT} starts once it has its blocks.
     *
     * @param requestId the request id
     * @param numTokens the prompt positions
     * @param capacityTokens the positions the generation needs in all
     * @param prefixBlocks blocks already holding a shared prefix, or an empty array
     * @param wait the longest to wait for blocks; zero: fail at once when too few are free
     * @return the request
     * @throws KvException POOL_EXHAUSTED when no blocks were freed in time (at once when the
     *     request needs more than the pool holds), INVALID_PARAMS, CLOSED, ABORTED (interrupted)
     */
    public DecodeRequest expect(String requestId, int numTokens, int capacityTokens, int[] prefixBlocks,
            Duration wait) {
        DecodeRequest r = newDecode(requestId, numTokens, capacityTokens, prefixBlocks, TransferMode.PUSH, null,
                wait);
        synchronized (r) {
            r.destination = destination(r);
        }
        return r;
    }

    /**
     * Prefill first: fetches the KV cache of a request a prefill worker computed and described with
     * {@code source} (from {@link PrefillRequest#finish()}): in push mode tells it where to write,
     * in pull mode reads it. Then {@link DecodeRequest#await()}.
     *
     * @param source the prefill side's parameters
     * @param capacityTokens the positions the generation needs in all
     * @param prefixBlocks blocks of this pool already holding the first positions, or empty
     * @return the request
     */
    public DecodeRequest fetch(KvTransferParams source, int capacityTokens, int[] prefixBlocks) {
        return fetch(source, capacityTokens, prefixBlocks, config.allocWait());
    }

    /**
     * Like {@link #fetch(KvTransferParams, int, int[])}, waiting up to {@code wait} for free blocks
     * when the pool is full; the wait ends early enough for the transfer to finish before the
     * prefill result expires.
     *
     * @param source the prefill side's parameters
     * @param capacityTokens the positions the generation needs in all
     * @param prefixBlocks blocks of this pool already holding the first positions, or empty
     * @param wait the longest to wait for blocks; zero: fail at once when too few are free
     * @return the request
     */
    public DecodeRequest fetch(KvTransferParams source, int capacityTokens, int[] prefixBlocks, Duration wait) {
        Objects.requireNonNull(source, "source");
        if (source.role() != KvTransferParams.Role.PREFILL) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + source.requestId()
                    + ": fetch needs the prefill worker's kv_transfer_params, got a decode destination");
        }
        if (!layout.isCompatible(source.layout())) {
            throw new KvException(KvError.LAYOUT_MISMATCH, "request " + source.requestId() + ": prefill layout "
                    + source.layout() + " differs from decode's " + layout);
        }
        if (source.startToken() != 0) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + source.requestId()
                    + ": a prefill source must cover the prompt from position 0");
        }
        Duration w = wait;
        if (source.expiresAtMillis() > 0) {
            // a pull must end before prefill may free and reuse its blocks
            long left = source.expiresAtMillis() - System.currentTimeMillis();
            long need = source.mode() == TransferMode.PULL ? engine.config().transferTimeout().toMillis() : 0;
            if (left <= need) {
                throw new KvException(KvError.EXPIRED, "request " + source.requestId() + ": the prefill result "
                        + (left <= 0 ? "expired " + -left + " ms ago" : "expires in " + left + " ms, before a pull could end")
                        + " (MC_KV_UNCLAIMED_TIMEOUT on the prefill side)");
            }
            w = min(w, Duration.ofMillis(left - need));
        }
        DecodeRequest r = newDecode(source.requestId(), source.numTokens(), capacityTokens, prefixBlocks,
                source.mode(), source, w);
        if (source.mode() == TransferMode.PUSH) {
            KvTransferParams dest;
            synchronized (r) {
                dest = destination(r);
                r.destination = dest;
            }
            JsonObject body = new JsonObject();
            body.add("params", dest.toJson());
            io.execute(() -> {
                try {
                    engine.sendNotification(source.engine(), new KvMessage(KvMessage.Type.DEST, source.connector(), id,
                            r.requestId, body).encode());
                } catch (RuntimeException e) {
                    notificationsFailed.incrementAndGet();
                    failDecode(r, KvError.PEER_ERROR, "could not reach prefill worker " + source.engine() + ": "
                            + e.getMessage(), true);
                }
            });
        } else {
            io.execute(() -> pull(r));
        }
        return r;
    }

    private DecodeRequest newDecode(String requestId, int numTokens, int capacityTokens, int[] prefixBlocks,
            TransferMode mode, KvTransferParams source, Duration wait) {
        ensureOpen();
        if (requestId == null || requestId.isEmpty()) {
            throw new KvException(KvError.INVALID_PARAMS, "request id is empty");
        }
        if (numTokens <= 0) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + requestId + ": numTokens must be positive");
        }
        int[] prefix = prefixBlocks == null ? new int[0] : prefixBlocks;
        int bt = layout.blockTokens();
        int usedPrefix = Math.min(prefix.length, numTokens / bt);
        int capacity = Math.max(capacityTokens, numTokens);
        int fresh = layout.blocksFor(capacity) - usedPrefix;
        allocator.retain(prefix, 0, usedPrefix);
        int[] got;
        try {
            got = allocate(fresh, wait);
        } catch (RuntimeException e) {
            allocator.release(prefix, 0, usedPrefix);
            throw e;
        }
        int[] table = new int[usedPrefix + fresh];
        System.arraycopy(prefix, 0, table, 0, usedPrefix);
        System.arraycopy(got, 0, table, usedPrefix, fresh);
        PagedKvCache cache;
        try {
            cache = pool.cache(table, manager);
        } catch (RuntimeException e) {
            allocator.release(table);
            throw e;
        }
        DecodeRequest r = new DecodeRequest(this, requestId, numTokens, usedPrefix * bt, table, usedPrefix, cache,
                mode, source);
        if (decodes.putIfAbsent(requestId, r) != null) {
            cache.close();
            allocator.release(table);
            throw new KvException(KvError.INVALID_PARAMS, "decode request " + requestId + " is already waiting");
        }
        synchronized (r) {
            r.timeout = timer.schedule(() -> failDecode(r, KvError.TIMEOUT, "no KV cache within "
                    + config.waitTimeout().toMillis() + " ms (MC_KV_WAIT_TIMEOUT)", true),
                    config.waitTimeout().toNanos(), TimeUnit.NANOSECONDS);
        }
        return r;
    }

    private KvTransferParams destination(DecodeRequest r) {
        int startBlock = r.startToken / layout.blockTokens();
        int[] ids = Arrays.copyOfRange(r.blocks, startBlock, layout.blocksFor(r.numTokens));
        long left = config.waitTimeout().toMillis() - TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - r.createdNanos);
        left = Math.max(1, left);
        return new KvTransferParams(r.requestId, KvTransferParams.Role.DECODE, TransferMode.PUSH,
                engine.localSegmentName(), id, r.numTokens, r.startToken, ids, layout, bases(KvPart.KEY),
                bases(KvPart.VALUE), left, System.currentTimeMillis() + left, null);
    }

    /** Reads the request's blocks from the prefill worker; runs on an I/O thread. */
    /**
     * One request per (layer, K/V, run of blocks): the local run starting at {@code run.src()} and the
     * peer's starting at {@code run.dst()}, so runs contiguous on both sides move in one request.
     */
    private TransferBatch blockBatch(Opcode op, KvTransferParams peer, List<BlockRun> runs) {
        Segment seg = engine.openSegment(peer.engine());
        TransferBatch b = engine.newBatch(layout.layers() * 2 * runs.size());
        long bb = layout.blockBytes();
        for (int l = 0; l < layout.layers(); l++) {
            for (KvPart part : KvPart.values()) {
                for (BlockRun run : runs) {
                    b.add(op, seg, pool.blockAddress(l, part, run.src()), peer.base(l, part) + run.dst() * bb,
                            run.count() * bb);
                }
            }
        }
        return b;
    }

    /** The bytes {@link #blockBatch} moves for these runs. */
    private long bytesOf(List<BlockRun> runs) {
        long blocks = 0;
        for (BlockRun run : runs) {
            blocks += run.count();
        }
        return blocks * layout.blockBytes() * layout.layers() * 2;
    }

    private void pull(DecodeRequest r) {
        KvTransferParams s = r.source;
        int[] pinned = null;
        try {
            int startBlock = r.startToken / layout.blockTokens();
            int n = layout.blocksFor(r.numTokens) - startBlock;
            int[] local = Arrays.copyOfRange(r.blocks, startBlock, startBlock + n);
            int[] remote = Arrays.copyOfRange(s.blockIds(), startBlock, startBlock + n);
            List<BlockRun> runs = BlockRuns.coalesce(local, remote);
            if (runs.isEmpty()) {
                KvTransferStats stats = stats(r.requestId, "decode", TransferMode.PULL, s.engine(), r.numTokens,
                        r.startToken, 0, 0, 0, 0, 0, System.nanoTime() - r.createdNanos);
                completeDecode(r, stats);
                notifyPeer(s.engine(), KvMessage.Type.RELEASE, s.connector(), r.requestId, statsBody(stats));
                return;
            }
            TransferBatch b = blockBatch(Opcode.READ, s, runs);
            long bytes = bytesOf(runs);
            allocator.retain(local);
            pinned = local;
            synchronized (r) {
                if (r.state != DecodeRequest.State.WAITING) {
                    allocator.release(local);
                    pinned = null;
                    return;
                }
                r.batch = b;
            }
            long t0 = System.nanoTime();
            b.submit();
            transferRequests.addAndGet(b.size());
            pinned = null;
            long total = bytes;
            b.completion().whenCompleteAsync((done, ex) -> {
                long transfer = System.nanoTime() - t0;
                allocator.release(local);
                if (b.isAllCompleted()) {
                    bytesReceived.addAndGet(total);
                    KvTransferStats stats = stats(r.requestId, "decode", TransferMode.PULL, s.engine(), r.numTokens,
                            r.startToken, local.length, runs.size(), b.size(), total, transfer,
                            System.nanoTime() - r.createdNanos);
                    notifyPeer(s.engine(), KvMessage.Type.RELEASE, s.connector(), r.requestId, statsBody(stats));
                    completeDecode(r, stats);
                } else {
                    String why = "pull of request " + r.requestId + " from " + s.engine() + " failed: " + failure(b);
                    notifyPeer(s.engine(), KvMessage.Type.RELEASE, s.connector(), r.requestId, reasonBody(why));
                    failDecode(r, KvError.TRANSFER_FAILED, why, false);
                }
            }, io);
        } catch (RuntimeException e) {
            if (pinned != null) {
                allocator.release(pinned);
            }
            String why = "pull of request " + r.requestId + " from " + s.engine() + " failed: " + e.getMessage();
            notifyPeer(s.engine(), KvMessage.Type.RELEASE, s.connector(), r.requestId, reasonBody(why));
            failDecode(r, e instanceof KvException ? ((KvException) e).error() : KvError.TRANSFER_FAILED, why, false);
        }
    }

    private void completeDecode(DecodeRequest r, KvTransferStats stats) {
        synchronized (r) {
            if (r.state != DecodeRequest.State.WAITING) {
                return;
            }
            r.state = DecodeRequest.State.READY;
            if (r.timeout != null) {
                r.timeout.cancel(false);
            }
            r.batch = null;
        }
        decodes.remove(r.requestId, r);
        decodeCompleted.incrementAndGet();
        r.future.complete(stats);
    }

    /**
     * Fails a waiting decode request and frees its blocks: at once when no transfer can still touch
     * them, else after the quarantine (or when the peer's final word arrives).
     */
    void failDecode(DecodeRequest r, KvError error, String why, boolean mayBeInFlight) {
        TransferBatch batch;
        synchronized (r) {
            if (r.state != DecodeRequest.State.WAITING) {
                return;
            }
            r.state = DecodeRequest.State.FAILED;
            if (r.timeout != null) {
                r.timeout.cancel(false);
            }
            batch = r.batch;
            r.batch = null;
        }
        decodes.remove(r.requestId, r);
        decodeFailed.incrementAndGet();
        if (batch != null) {
            batch.close();
        }
        KvTransferParams s = r.source;
        if (mayBeInFlight && s != null && r.mode == TransferMode.PUSH) {
            notifyPeer(s.engine(), KvMessage.Type.ABORT, s.connector(), r.requestId, reasonBody(why));
        }
        r.cache.close();
        if (mayBeInFlight) {
            quarantine(r.requestId, r.blocks);
        } else {
            allocator.release(r.blocks);
        }
        LOG.debug("decode request {} failed: {}", r.requestId, why);
        r.future.completeExceptionally(new KvException(error, "request " + r.requestId + ": " + why));
    }

    private void quarantine(String requestId, int[] blocks) {
        quarantines.incrementAndGet();
        int[] held = quarantined.put(requestId, blocks);
        if (held != null) {
            allocator.release(held);
        }
        timer.schedule(() -> {
            if (quarantined.remove(requestId, blocks)) {
                allocator.release(blocks);
            }
        }, quarantine.toNanos(), TimeUnit.NANOSECONDS);
    }

    private void endQuarantine(String requestId) {
        int[] blocks = quarantined.remove(requestId);
        if (blocks != null) {
            allocator.release(blocks);
        }
    }

    void closeDecode(DecodeRequest r) {
        cancelDecode(r, true);
    }

    /**
     * Ends a decode request: a ready one frees its blocks; a waiting one fails, its blocks freed
     * at once when no peer can be writing into them ({@code delivered} false and a destination the
     * application carried itself), else after the quarantine.
     */
    void cancelDecode(DecodeRequest r, boolean delivered) {
        boolean waiting;
        synchronized (r) {
            waiting = r.state == DecodeRequest.State.WAITING;
            if (r.state == DecodeRequest.State.READY) {
                r.state = DecodeRequest.State.CLOSED;
            } else if (!waiting) {
                return;
            }
        }
        if (waiting) {
            // a fetch's destination (push) or read (pull) went out from this connector itself
            boolean mayBeInFlight = delivered || r.source != null;
            failDecode(r, KvError.ABORTED, mayBeInFlight ? "closed while waiting for its KV cache"
                    : "cancelled before its destination reached a prefill worker", mayBeInFlight);
            return;
        }
        r.cache.close();
        allocator.release(r.blocks);
    }

    // =============================================================== messages

    /** Called by the router thread: hands the message to an I/O thread. */
    void onMessage(String sender, KvMessage m) {
        if (closed.get()) {
            return;
        }
        io.execute(() -> {
            try {
                handle(sender, m);
            } catch (RuntimeException e) {
                LOG.warn("connector {} failed handling {}", id, m, e);
            }
        });
    }

    private void handle(String sender, KvMessage m) {
        switch (m.type) {
            case DEST:
                onDestination(m);
                break;
            case ABORT:
                onAbort(m);
                break;
            case RELEASE:
                onRelease(m);
                break;
            case DONE: {
                DecodeRequest r = decodes.get(m.requestId);
                if (r == null) {
                    endQuarantine(m.requestId);
                    return;
                }
                KvTransferStats peer;
                try {
                    peer = KvTransferStats.fromJson(m.body.getAsJsonObject("stats"));
                } catch (RuntimeException e) {
                    peer = stats(r.requestId, "prefill", r.mode, sender, r.numTokens, r.startToken, 0, 0, 0, 0, 0, 0);
                }
                completeDecode(r, peer.as("decode", sender, System.nanoTime() - r.createdNanos));
                break;
            }
            case ERROR: {
                DecodeRequest r = decodes.get(m.requestId);
                if (r == null) {
                    endQuarantine(m.requestId);
                    return;
                }
                failDecode(r, KvError.PEER_ERROR, "prefill worker " + sender + " reported: " + m.reason(), false);
                break;
            }
            default:
                break;
        }
    }

    private void onDestination(KvMessage m) {
        KvTransferParams d;
        try {
            d = KvTransferParams.fromJson(m.body.getAsJsonObject("params"));
        } catch (RuntimeException e) {
            LOG.debug("malformed destination for {}: {}", m.requestId, e.toString());
            return;
        }
        PrefillRequest r = prefills.get(m.requestId);
        if (r == null) {
            if (recentlyEnded.containsKey(m.requestId)) {
                notifyPeer(d.engine(), KvMessage.Type.ERROR, d.connector(), d.requestId(),
                        reasonBody("prefill request " + m.requestId + " already ended (expired, aborted or delivered)"));
            } else {
                pendingDestinations.put(m.requestId, new PendingDestination(d, System.nanoTime()));
            }
            return;
        }
        boolean pushNow = false;
        String refuse = null;
        synchronized (r) {
            try {
                checkDestination(d, r.requestId, r.numTokens);
            } catch (KvException e) {
                refuse = e.getMessage();
            }
            if (refuse == null) {
                if (r.destination != null || r.state == PrefillRequest.State.TRANSFERRING
                        || r.state == PrefillRequest.State.ENDED) {
                    refuse = "request " + r.requestId + " already has a destination or ended";
                } else {
                    r.destination = d;
                    r.destinationDeadline = deadline(System.nanoTime(), d);
                    if (r.state == PrefillRequest.State.READY) {
                        r.state = PrefillRequest.State.TRANSFERRING;
                        pushNow = true;
                    }
                }
            }
        }
        if (refuse != null) {
            notifyPeer(d.engine(), KvMessage.Type.ERROR, d.connector(), d.requestId(), reasonBody(refuse));
        } else if (pushNow) {
            push(r, d);
        }
    }

    private void onAbort(KvMessage m) {
        pendingDestinations.remove(m.requestId);
        PrefillRequest r = prefills.get(m.requestId);
        if (r != null) {
            abortPrefill(r, "decode worker aborted: " + m.reason(), false);
        }
    }

    private void onRelease(KvMessage m) {
        PrefillRequest r = prefills.get(m.requestId);
        if (r == null) {
            return;
        }
        synchronized (r) {
            if (r.state != PrefillRequest.State.READY) {
                return;
            }
        }
        if (m.body.has("stats")) {
            KvTransferStats peer = KvTransferStats.fromJson(m.body.getAsJsonObject("stats"));
            endPrefill(r, peer.as("prefill", m.from, System.nanoTime() - r.readyNanos), null);
        } else {
            endPrefill(r, null, new KvException(KvError.PEER_ERROR, "decode worker reported: " + m.reason()));
        }
    }

    private void notifyPeer(String segment, KvMessage.Type type, String to, String requestId, JsonObject body) {
        String text = new KvMessage(type, to, id, requestId, body).encode();
        io.execute(() -> {
            try {
                engine.sendNotification(segment, text);
            } catch (RuntimeException e) {
                notificationsFailed.incrementAndGet();
                LOG.debug("could not send {} for {} to {}: {}", type, requestId, segment, e.toString());
            }
        });
    }

    private static JsonObject reasonBody(String reason) {
        JsonObject o = new JsonObject();
        o.addProperty("reason", reason);
        return o;
    }

    private static JsonObject statsBody(KvTransferStats s) {
        JsonObject o = new JsonObject();
        o.add("stats", s.toJson());
        return o;
    }

    private static KvTransferStats stats(String rid, String role, TransferMode mode, String peer, int tokens,
            int start, int blocks, int runs, int requests, long bytes, long transfer, long total) {
        return new KvTransferStats(rid, role, mode, peer, tokens, start, blocks, runs, requests, bytes, transfer, total);
    }

    // =============================================================== housekeeping

    /** Frees prefill results and destinations nobody claimed in time. */
    private void sweep() {
        try {
            long now = System.nanoTime();
            long limit = config.unclaimedTimeout().toNanos();
            for (PrefillRequest r : prefills.values()) {
                boolean expired;
                synchronized (r) {
                    expired = r.state == PrefillRequest.State.READY && now - r.readyNanos > limit;
                }
                if (expired) {
                    endPrefill(r, null, new KvException(KvError.EXPIRED, "prefill result of request " + r.requestId
                            + " was not claimed within " + config.unclaimedTimeout().toMillis()
                            + " ms (MC_KV_UNCLAIMED_TIMEOUT)"));
                }
            }
            recentlyEnded.values().removeIf(t -> now - t > limit);
            for (Map.Entry<String, PendingDestination> e : pendingDestinations.entrySet()) {
                PendingDestination p = e.getValue();
                if (now - p.receivedNanos() > limit && pendingDestinations.remove(e.getKey(), p)) {
                    notifyPeer(p.params().engine(), KvMessage.Type.ERROR, p.params().connector(), e.getKey(),
                            reasonBody("no prefill request " + e.getKey() + " started on " + engine.localSegmentName()
                                    + " within " + config.unclaimedTimeout().toMillis() + " ms"));
                }
            }
        } catch (RuntimeException e) {
            LOG.warn("KV connector sweep failed", e);
        }
    }

    /** A snapshot of the counters. */
    public KvConnectorMetrics metrics() {
        return new KvConnectorMetrics(prefillCompleted.get(), prefillFailed.get(), prefillExpired.get(),
                decodeCompleted.get(), decodeFailed.get(), bytesSent.get(), bytesReceived.get(),
                transferRequests.get(), notificationsFailed.get(), quarantines.get(), allocator.freeBlocks(),
                allocator.usedBlocks(), prefills.size(), decodes.size());
    }

    static KvTransferStats await(CompletableFuture<KvTransferStats> f, Duration timeout, String requestId) {
        try {
            return f.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof KvException) {
                KvException k = (KvException) c;
                throw new KvException(k.error(), k.detail(), k);
            }
            throw new KvException(KvError.TRANSFER_FAILED, "request " + requestId + " failed: " + c, c);
        } catch (TimeoutException e) {
            throw new KvException(KvError.TIMEOUT, "request " + requestId + ": no result within "
                    + timeout.toMillis() + " ms");
        } catch (CancellationException e) {
            throw new KvException(KvError.ABORTED, "request " + requestId + " was cancelled");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new KvException(KvError.ABORTED, "interrupted while waiting for request " + requestId);
        }
    }

    private void ensureOpen() {
        if (closed.get()) {
            throw new KvException(KvError.CLOSED, "KV connector " + id + " is closed");
        }
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
        return closed.get();
    }

    /**
     * Fails every live request (telling peers), cancels transfers in flight, stops the threads and
     * leaves the engine's notifications. Does not close the pool or the engine. Idempotent.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        router.unregister(this);
        allocator.wakeWaiters();
        for (DecodeRequest r : new ArrayList<>(decodes.values())) {
            failDecode(r, KvError.CLOSED, "the decode connector closed", true);
        }
        for (PrefillRequest r : new ArrayList<>(prefills.values())) {
            abortPrefill(r, "the prefill connector closed", true);
        }
        for (String rid : new ArrayList<>(quarantined.keySet())) {
            endQuarantine(rid);
        }
        pendingDestinations.clear();
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

    @Override
    public String toString() {
        return "KvConnector[" + id + " on " + engine.localSegmentName() + ", " + layout + "]";
    }
}
