package io.mooncake4j.djl.connector;

import ai.djl.ndarray.NDManager;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.time.Duration;
import java.util.Objects;
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
 *
 * <p>This class is the facade: the prefill role lives in {@link PrefillSide}, the decode role in
 * {@link DecodeSide}, each request's state machine in {@link PrefillRequest} and {@link
 * DecodeRequest}, and what they share (pool, threads, counters, messages to peers) in {@link
 * ConnectorContext}.
 */
public final class KvConnector implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KvConnector.class);

    private final ConnectorContext ctx;
    private final PrefillSide prefill;
    private final DecodeSide decode;
    private final NotificationRouter router;

    private KvConnector(PagedKvPool pool, KvConnectorConfig config, NDManager parent) {
        this.ctx = new ConnectorContext(pool, config, parent);
        this.prefill = new PrefillSide(ctx);
        this.decode = new DecodeSide(ctx);
        long sweep = Math.max(10, Math.min(1000, config.unclaimedTimeout().toMillis() / 4));
        ctx.every(this::sweep, sweep);
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
        return ctx.id;
    }

    /** The engine of the pool. */
    public TransferEngine engine() {
        return ctx.engine;
    }

    /** The pool. */
    public PagedKvPool pool() {
        return ctx.pool;
    }

    /** The settings. */
    public KvConnectorConfig config() {
        return ctx.config;
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
        return startPrefill(requestId, numTokens, destination, ctx.config.allocWait());
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
        return prefill.start(requestId, numTokens, destination, wait);
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
        return expect(requestId, numTokens, capacityTokens, prefixBlocks, ctx.config.allocWait());
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
        return decode.expect(requestId, numTokens, capacityTokens, prefixBlocks, wait);
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
        return fetch(source, capacityTokens, prefixBlocks, ctx.config.allocWait());
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
        return decode.fetch(source, capacityTokens, prefixBlocks, wait);
    }

    // =============================================================== messages

    /** Called by the router thread: hands the message to an I/O thread. */
    void onMessage(String sender, KvMessage m) {
        if (ctx.isClosed()) {
            return;
        }
        ctx.io().execute(() -> {
            try {
                dispatch(sender, m);
            } catch (RuntimeException e) {
                LOG.warn("connector {} failed handling {}", ctx.id, m, e);
            }
        });
    }

    private void dispatch(String sender, KvMessage m) {
        switch (m.type) {
            case DEST:
                prefill.onDestination(sender, m);
                break;
            case ABORT:
                prefill.onAbort(sender, m);
                break;
            case RELEASE:
                prefill.onRelease(m);
                break;
            case DONE:
                decode.onDone(sender, m);
                break;
            case ERROR:
                decode.onError(sender, m);
                break;
            default:
                break;
        }
    }

    private void sweep() {
        try {
            prefill.sweep();
        } catch (RuntimeException e) {
            LOG.warn("KV connector sweep failed", e);
        }
    }

    /** A snapshot of the counters. */
    public KvConnectorMetrics metrics() {
        return ctx.counters.snapshot(ctx.allocator, prefill.active(), decode.active());
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
        return ctx.isClosed();
    }

    /**
     * Fails every live request (telling peers), cancels transfers in flight, stops the threads and
     * leaves the engine's notifications. Does not close the pool or the engine. Idempotent.
     */
    @Override
    public void close() {
        if (!ctx.markClosed()) {
            return;
        }
        router.unregister(this);
        ctx.allocator.wakeWaiters();
        decode.closeAll();
        prefill.closeAll();
        ctx.shutdown();
    }

    @Override
    public String toString() {
        return "KvConnector[" + ctx.id + " on " + ctx.engine.localSegmentName() + ", " + ctx.layout + "]";
    }
}
