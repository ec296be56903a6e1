package io.mooncake4j.djl.connector;

import io.mooncake4j.TransferBatch;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.kv.PagedKvCache;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * The prefill side of one request: blocks of the connector's pool that the model fills through
 * {@link #cache()}, then hands over with {@link #finish()}. The connector frees the blocks when the
 * KV cache was delivered (push) or read (pull), when delivery failed, when the request was aborted,
 * or when nobody claimed it within {@code MC_KV_UNCLAIMED_TIMEOUT}.
 *
 * <p>Do not close or keep using {@link #cache()} after {@link #finish()}.
 *
 * <p>Its state machine: {@code COMPUTING -> READY -> TRANSFERRING -> ENDED}, where {@code
 * COMPUTING} goes straight to {@code TRANSFERRING} when the destination is known at {@link
 * #finish()}, and any state but {@code ENDED} may end early (abort, failure, expiry). Every
 * transition is one of this class's methods, under its monitor; {@link #moveTo} checks that it is
 * legal.
 */
public final class PrefillRequest implements AutoCloseable {
    enum State {
        COMPUTING,
        READY,
        TRANSFERRING,
        ENDED;

        boolean canMoveTo(State next) {
            switch (this) {
                case COMPUTING:
                    return next != COMPUTING;
                case READY:
                    return next == TRANSFERRING || next == ENDED;
                case TRANSFERRING:
                    return next == ENDED;
                default:
                    return false;
            }
        }
    }

    /** What {@link #markFinished} decided. */
    enum Finish {
        /** No destination yet: wait for the decode side to claim the blocks. */
        WAIT_FOR_CLAIM,
        /** The destination is known: push now. */
        PUSH,
        /** An abort came while computing: end the request. */
        ABORTED
    }

    /** What {@link #offerDestination} decided. */
    enum Offer {
        /** Kept for when the model finishes. */
        KEPT,
        /** The request was ready: push now. */
        PUSH_NOW,
        /** The request already has a destination, or is past the point of taking one. */
        REFUSED
    }

    /** What {@link #requestAbort} decided. */
    enum Abort {
        /** The request had ended or was already aborting. */
        IGNORED,
        /** The transfer in flight was cancelled; the request ends with it. */
        TRANSFER_CANCELLED,
        /** Nothing uses the blocks: end the request now. */
        END_NOW,
        /**
         * The model may still write the cache (the request ends at {@link #finish()}), or its push
         * is being prepared (it ends when the push sees the abort).
         */
        DEFERRED
    }

    private final PrefillSide side;
    private final String requestId;
    private final int numTokens;
    private final int[] blocks;
    private final PagedKvCache cache;
    private final CompletableFuture<KvTransferStats> future = new CompletableFuture<>();
    // guarded by this
    private State state = State.COMPUTING;
    private KvTransferParams destination;
    private long destinationDeadline;
    private String abortReason;
    private TransferBatch batch;
    private long readyNanos;

    PrefillRequest(PrefillSide side, String requestId, int numTokens, int[] blocks, PagedKvCache cache,
            KvTransferParams destination, long destinationDeadline) {
        this.side = side;
        this.requestId = requestId;
        this.numTokens = numTokens;
        this.blocks = blocks;
        this.cache = cache;
        this.destination = destination;
        this.destinationDeadline = destinationDeadline;
    }

    /** The request id. */
    public String requestId() {
        return requestId;
    }

    /** The prompt positions this request computes. */
    public int numTokens() {
        return numTokens;
    }

    /** The cache the model writes the prompt's keys and values into (registered memory, no copy). */
    public PagedKvCache cache() {
        return cache;
    }

    /** Whether the decode side's destination is known yet (given at start, or received since). */
    public synchronized boolean hasDestination() {
        return destination != null;
    }

    /**
     * Says the model has written every position: the connector pushes to the destination if it is
     * known, or waits for the decode side to claim the blocks (a {@code dest} notification in push
     * mode, a read in pull mode).
     *
     * @return the source parameters to hand to the decode side (e.g. in the HTTP response)
     */
    public KvTransferParams finish() {
        return side.finish(this, null);
    }

    /**
     * Like {@link #finish()}, choosing how a decode side that has not sent its destination yet
     * should claim the blocks (ignored when the destination is known: that is a push).
     *
     * @param mode push (decode sends a destination) or pull (decode reads)
     * @return the source parameters for the decode side
     */
    public KvTransferParams finish(TransferMode mode) {
        return side.finish(this, mode);
    }

    /**
     * A future that completes when the request's blocks are freed: normally with the transfer's
     * stats, exceptionally with a {@link KvException} when delivery failed, was aborted or expired.
     */
    public CompletableFuture<KvTransferStats> completion() {
        return future;
    }

    /**
     * Waits for {@link #completion()}.
     *
     * @param timeout how long to wait
     * @return the stats
     * @throws KvException the failure, or TIMEOUT when the wait ran out (the request goes on)
     */
    public KvTransferStats await(Duration timeout) {
        return RequestWait.await(future, timeout, requestId);
    }

    /**
     * Gives up on the request (e.g. the model failed): frees the blocks once no transfer uses them
     * and tells the decode side, if known, that no KV cache is coming.
     *
     * @param reason why, for the decode side's error
     */
    public void abort(String reason) {
        side.abort(this, reason, true);
    }

    /** Aborts the request unless {@link #finish()} was called. Idempotent. */
    @Override
    public void close() {
        boolean computing;
        synchronized (this) {
            computing = state == State.COMPUTING;
        }
        if (computing) {
            abort("prefill request closed before finish()");
        }
    }

    // ------------------------------------------------------------------ for the prefill side

    int[] blockTable() {
        return blocks;
    }

    synchronized KvTransferParams destination() {
        return destination;
    }

    /** When a push into the destination must not start any more (Long.MAX_VALUE: never). */
    synchronized long destinationDeadline() {
        return destinationDeadline;
    }

    /** When {@link #finish()} was called. */
    synchronized long readyNanos() {
        return readyNanos;
    }

    synchronized String abortReason() {
        return abortReason;
    }

    /** Whether the result waits to be claimed. */
    synchronized boolean isReady() {
        return state == State.READY;
    }

    /** Whether the result has waited to be claimed longer than {@code limitNanos}. */
    synchronized boolean isUnclaimedSince(long nowNanos, long limitNanos) {
        return state == State.READY && nowNanos - readyNanos > limitNanos;
    }

    /** The model is done: COMPUTING becomes READY or TRANSFERRING (or the request must end). */
    synchronized Finish markFinished(long nowNanos) {
        if (state != State.COMPUTING) {
            throw new KvException(KvError.INVALID_PARAMS, "prefill request " + requestId + " already finished ("
                    + state + ")");
        }
        readyNanos = nowNanos;
        if (abortReason != null) {
            return Finish.ABORTED;
        }
        if (destination != null) {
            moveTo(State.TRANSFERRING);
            return Finish.PUSH;
        }
        moveTo(State.READY);
        return Finish.WAIT_FOR_CLAIM;
    }

    /** The decode side's destination arrived (already checked against this request). */
    synchronized Offer offerDestination(KvTransferParams d, long deadline) {
        if (destination != null || state == State.TRANSFERRING || state == State.ENDED) {
            return Offer.REFUSED;
        }
        destination = d;
        destinationDeadline = deadline;
        if (state == State.READY) {
            moveTo(State.TRANSFERRING);
            return Offer.PUSH_NOW;
        }
        return Offer.KEPT;
    }

    /** The push's batch is about to be submitted; false when an abort came first. */
    synchronized boolean attachBatch(TransferBatch b) {
        if (state != State.TRANSFERRING) {
            throw new IllegalStateException("prefill request " + requestId + " pushes while " + state);
        }
        if (abortReason != null) {
            return false;
        }
        batch = b;
        return true;
    }

    /**
     * Marks the request aborted. From the application ({@code fromApp}) a computing request ends at
     * once; from the decode side it ends at {@link #finish()}, since the model may still be writing.
     * A transfer in flight is cancelled here (its completion ends the request).
     */
    Abort requestAbort(String reason, boolean fromApp) {
        TransferBatch inFlight;
        Abort outcome;
        synchronized (this) {
            if (state == State.ENDED || abortReason != null) {
                return Abort.IGNORED;
            }
            abortReason = reason;
            inFlight = batch;
            if (inFlight != null) {
                outcome = Abort.TRANSFER_CANCELLED;
            } else if (state == State.READY || (fromApp && state == State.COMPUTING)) {
                outcome = Abort.END_NOW;
            } else {
                outcome = Abort.DEFERRED;
            }
        }
        if (inFlight != null) {
            inFlight.close(); // outside the monitor: its completion runs the request's end
        }
        return outcome;
    }

    /** Moves to ENDED; false when it had ended already. */
    synchronized boolean markEnded() {
        if (state == State.ENDED) {
            return false;
        }
        moveTo(State.ENDED);
        return true;
    }

    /** Completes {@link #completion()}, once the side has freed the blocks. */
    void settle(KvTransferStats stats, KvException error) {
        RequestWait.settle(future, stats, error);
    }

    private void moveTo(State next) {
        if (!state.canMoveTo(next)) {
            throw new IllegalStateException("prefill request " + requestId + ": " + state + " -> " + next);
        }
        state = next;
    }

    @Override
    public synchronized String toString() {
        return "PrefillRequest[" + requestId + ", " + numTokens + " tokens, " + blocks.length + " blocks, " + state + "]";
    }
}
