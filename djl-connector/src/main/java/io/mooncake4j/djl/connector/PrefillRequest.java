package io.mooncake4j.djl.connector;

import io.mooncake4j.TransferBatch;
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
 */
public final class PrefillRequest implements AutoCloseable {
    enum State {
        COMPUTING,
        READY,
        TRANSFERRING,
        ENDED
    }

    final KvConnector connector;
    final String requestId;
    final int numTokens;
    final int[] blocks;
    final PagedKvCache cache;
    final long createdNanos = System.nanoTime();
    final CompletableFuture<KvTransferStats> future = new CompletableFuture<>();
    // guarded by this
    State state = State.COMPUTING;
    KvTransferParams destination;
    long destinationDeadline;
    boolean abortRequested;
    String abortReason;
    TransferBatch batch;
    long readyNanos;
    KvTransferParams source;

    PrefillRequest(KvConnector connector, String requestId, int numTokens, int[] blocks, PagedKvCache cache) {
        this.connector = connector;
        this.requestId = requestId;
        this.numTokens = numTokens;
        this.blocks = blocks;
        this.cache = cache;
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
        return connector.finish(this, null);
    }

    /**
     * Like {@link #finish()}, choosing how a decode side that has not sent its destination yet
     * should claim the blocks (ignored when the destination is known: that is a push).
     *
     * @param mode push (decode sends a destination) or pull (decode reads)
     * @return the source parameters for the decode side
     */
    public KvTransferParams finish(TransferMode mode) {
        return connector.finish(this, mode);
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
        return KvConnector.await(future, timeout, requestId);
    }

    /**
     * Gives up on the request (e.g. the model failed): frees the blocks once no transfer uses them
     * and tells the decode side, if known, that no KV cache is coming.
     *
     * @param reason why, for the decode side's error
     */
    public void abort(String reason) {
        connector.abortPrefill(this, reason, true);
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

    @Override
    public synchronized String toString() {
        return "PrefillRequest[" + requestId + ", " + numTokens + " tokens, " + blocks.length + " blocks, " + state + "]";
    }
}
