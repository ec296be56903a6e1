package io.mooncake4j.djl;

/** Stable codes of {@link KvException}; the numbers never change meaning. */
public enum KvError {
    /** An argument or a peer's parameters are wrong: the message says which. */
    INVALID_PARAMS(1),
    /** The two sides' KV layouts differ (layers, heads, head size, block tokens or dtype). */
    LAYOUT_MISMATCH(2),
    /** The data type cannot back a zero-copy cache (BFLOAT16, INT16, unsigned types). */
    UNSUPPORTED_DTYPE(3),
    /** Not enough free blocks in the pool. */
    POOL_EXHAUSTED(4),
    /** The KV cache did not arrive before the deadline. */
    TIMEOUT(5),
    /** The transfer engine reported a request that did not complete. */
    TRANSFER_FAILED(6),
    /** The peer reported an error, or could not be reached. */
    PEER_ERROR(7),
    /** The request was aborted (by the caller, the peer or an expiry). */
    ABORTED(8),
    /** A prefill result nobody claimed before {@code MC_KV_UNCLAIMED_TIMEOUT}. */
    EXPIRED(9),
    /** The connector or pool was closed. */
    CLOSED(10);

    private final int code;

    KvError(int code) {
        this.code = code;
    }

    /** The stable numeric code. */
    public int code() {
        return code;
    }
}
