package io.mooncake4j.djl.connector;

import io.mooncake4j.TransferBatch;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.kv.PagedKvCache;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledFuture;

/**
 * The decode side of one request: blocks of the connector's pool for the whole generation (a
 * reused prefix, the prompt's positions that arrive from prefill, and room for new tokens). Wait
 * for the KV cache with {@link #await()}, decode through {@link #cache()}, then {@link #close()} to
 * free the blocks ({@link #cancel(boolean) cancel(false)} when giving up on a request whose
 * destination never left this process). On failure or timeout the connector frees the blocks
 * itself (after a quarantine when the peer may still be writing into them).
 *
 * <p>Its state machine: {@code WAITING -> READY -> CLOSED}, or {@code WAITING -> FAILED}. Every
 * transition is one of this class's methods, under its monitor; {@link #moveTo} checks that it is
 * legal.
 */
public final class DecodeRequest implements AutoCloseable {
    enum State {
        WAITING,
        READY,
        FAILED,
        CLOSED;

        boolean canMoveTo(State next) {
            switch (this) {
                case WAITING:
                    return next == READY || next == FAILED;
                case READY:
                    return next == CLOSED;
                default:
                    return false;
            }
        }
    }

    /** What {@link #markCancelled} decided. */
    enum Cancel {
        /** The KV cache had arrived: free the blocks now. */
        FREE_BLOCKS,
        /** Still waiting: fail the request. */
        FAIL_WAITING,
        /** Failed or closed already. */
        NOTHING
    }

    private final DecodeSide side;
    private final String requestId;
    private final int numTokens;
    private final int startToken;
    private final int[] blocks;
    private final PagedKvCache cache;
    private final TransferMode mode;
    private final KvTransferParams source;
    private final long createdNanos = System.nanoTime();
    private final CompletableFuture<KvTransferStats> future = new CompletableFuture<>();
    // guarded by this
    private State state = State.WAITING;
    private KvTransferParams destination;
    private ScheduledFuture<?> timeout;
    private TransferBatch batch;

    DecodeRequest(DecodeSide side, String requestId, int numTokens, int startToken, int[] blocks, PagedKvCache cache,
            TransferMode mode, KvTransferParams source) {
        this.side = side;
        this.requestId = requestId;
        this.numTokens = numTokens;
        this.startToken = startToken;
        this.blocks = blocks;
        this.cache = cache;
        this.mode = mode;
        this.source = source;
    }

    /** The request id. */
    public String requestId() {
        return requestId;
    }

    /** The prompt positions whose KV cache this request receives (or already holds as a prefix). */
    public int numTokens() {
        return numTokens;
    }

    /** The first position transferred; positions before it came from the reused prefix blocks. */
    public int startToken() {
        return startToken;
    }

    /** A copy of the block table: prefix blocks, then the blocks that receive, then room to decode. */
    public int[] blocks() {
        return blocks.clone();
    }

    /** Push or pull. */
    public TransferMode mode() {
        return mode;
    }

    /** The cache over the block table, for decoding once {@link #await()} returned. */
    public PagedKvCache cache() {
        return cache;
    }

    /**
     * The destination parameters for the prefill side, in push mode: for a request started with
     * {@link KvConnector#expect}, the application carries them to the prefill worker (e.g. as
     * {@code kv_transfer_params} in its HTTP request).
     */
    public synchronized KvTransferParams params() {
        return destination;
    }

    /** A future completed with the stats when the KV cache is in place, or exceptionally on failure. */
    public CompletableFuture<KvTransferStats> completion() {
        return future;
    }

    /** Waits until the KV cache is in place, at most the connector's {@code MC_KV_WAIT_TIMEOUT}. */
    public KvTransferStats await() {
        return await(side.waitTimeout().plusSeconds(1));
    }

    /**
     * Waits until the KV cache is in place. When the wait runs out first the request is aborted
     * and its blocks freed.
     *
     * @param timeout how long to wait
     * @return the stats
     * @throws KvException TIMEOUT, PEER_ERROR, TRANSFER_FAILED, ABORTED ...
     */
    public KvTransferStats await(Duration timeout) {
        try {
            return RequestWait.await(future, timeout, requestId);
        } catch (KvException e) {
            side.fail(this, e.error(), "gave up waiting after " + timeout.toMillis() + " ms", true);
            throw e;
        }
    }

    /**
     * Frees the blocks (aborting the request if it still waits for its KV cache). A waiting
     * request's blocks stay out of use for the quarantine ({@code MC_KV_QUARANTINE}), since a
     * prefill worker may still be writing into them; see {@link #cancel(boolean)}. Idempotent.
     */
    @Override
    public void close() {
        side.cancel(this, true);
    }

    /**
     * Like {@link #close()}, saying whether the destination may have reached a prefill worker.
     * {@code delivered == false} promises that {@link #params()} never reached one (the call
     * carrying them was never made, could not connect, or was refused before the prefill worker
     * started a request with them): no peer can write into the blocks, so they are freed at once,
     * without the quarantine. When in doubt (a call that timed out or broke after sending), pass
     * true. A request started with {@link KvConnector#fetch} is always treated as delivered (the
     * connector itself sent its destination or reads into it). Idempotent; a no-op after {@link
     * #close()}.
     *
     * @param delivered whether the destination may have reached a prefill worker
     */
    public void cancel(boolean delivered) {
        side.cancel(this, delivered);
    }

    // ------------------------------------------------------------------ for the decode side

    int[] blockTable() {
        return blocks;
    }

    /** The prefill side's parameters for a fetched request; null for one started by expect. */
    KvTransferParams source() {
        return source;
    }

    long createdNanos() {
        return createdNanos;
    }

    /** Sets the destination given to the prefill side (push mode), once. */
    synchronized void assignDestination(KvTransferParams d) {
        if (destination != null) {
            throw new IllegalStateException("decode request " + requestId + " already has a destination");
        }
        destination = d;
    }

    /** Sets the {@code MC_KV_WAIT_TIMEOUT} task, cancelling it at once if the request no longer waits. */
    synchronized void armTimeout(ScheduledFuture<?> task) {
        if (state == State.WAITING) {
            timeout = task;
        } else {
            task.cancel(false);
        }
    }

    /** The pull's batch is about to be submitted; false when the request no longer waits. */
    synchronized boolean attachBatch(TransferBatch b) {
        if (state != State.WAITING) {
            return false;
        }
        batch = b;
        return true;
    }

    /** The KV cache arrived: WAITING becomes READY; false when the request no longer waits. */
    synchronized boolean markReady() {
        if (state != State.WAITING) {
            return false;
        }
        moveTo(State.READY);
        stopWaiting();
        return true;
    }

    /**
     * WAITING becomes FAILED and a pull in flight is cancelled; false when the request no longer
     * waits.
     */
    boolean markFailed() {
        TransferBatch inFlight;
        synchronized (this) {
            if (state != State.WAITING) {
                return false;
            }
            moveTo(State.FAILED);
            inFlight = batch;
            stopWaiting();
        }
        if (inFlight != null) {
            inFlight.close(); // outside the monitor: its completion looks at the state
        }
        return true;
    }

    /** The application is done with the request: READY becomes CLOSED. */
    synchronized Cancel markCancelled() {
        if (state == State.READY) {
            moveTo(State.CLOSED);
            return Cancel.FREE_BLOCKS;
        }
        return state == State.WAITING ? Cancel.FAIL_WAITING : Cancel.NOTHING;
    }

    /** Completes {@link #completion()}, once the side has placed or freed the blocks. */
    void settle(KvTransferStats stats, KvException error) {
        RequestWait.settle(future, stats, error);
    }

    private void stopWaiting() {
        if (timeout != null) {
            timeout.cancel(false);
        }
        batch = null;
    }

    private void moveTo(State next) {
        if (!state.canMoveTo(next)) {
            throw new IllegalStateException("decode request " + requestId + ": " + state + " -> " + next);
        }
        state = next;
    }

    @Override
    public synchronized String toString() {
        return "DecodeRequest[" + requestId + ", " + mode.jsonName() + ", tokens [" + startToken + ", " + numTokens
                + "), " + blocks.length + " blocks, " + state + "]";
    }
}
