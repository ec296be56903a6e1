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
 * destination never left this process). On failure or timeout the connector frees the blocks itself (after a quarantine
 * when the peer may still be writing into them).
 */
public final class DecodeRequest implements AutoCloseable {
    enum State {
        WAITING,
        READY,
        FAILED,
        CLOSED
    }

    final KvConnector connector;
    final String requestId;
    final int numTokens;
    final int startToken;
    final int[] blocks;
    final int retainedPrefix;
    final PagedKvCache cache;
    final TransferMode mode;
    final KvTransferParams source;
    final long createdNanos = System.nanoTime();
    final CompletableFuture<KvTransferStats> future = new CompletableFuture<>();
    // guarded by this
    State state = State.WAITING;
    KvTransferParams destination;
    ScheduledFuture<?> timeout;
    TransferBatch batch;

    DecodeRequest(KvConnector connector, String requestId, int numTokens, int startToken, int[] blocks,
            int retainedPrefix, PagedKvCache cache, TransferMode mode, KvTransferParams source) {
        this.connector = connector;
        this.requestId = requestId;
        this.numTokens = numTokens;
        this.startToken = startToken;
        this.blocks = blocks;
        this.retainedPrefix = retainedPrefix;
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
        return await(connector.config().waitTimeout().plusSeconds(1));
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
            return KvConnector.await(future, timeout, requestId);
        } catch (KvException e) {
            connector.failDecode(this, e.error(), "gave up waiting after " + timeout.toMillis() + " ms", true);
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
        connector.closeDecode(this);
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
        connector.cancelDecode(this, delivered);
    }

    @Override
    public synchronized String toString() {
        return "DecodeRequest[" + requestId + ", " + mode.jsonName() + ", tokens [" + startToken + ", " + numTokens
                + "), " + blocks.length + " blocks, " + state + "]";
    }
}
