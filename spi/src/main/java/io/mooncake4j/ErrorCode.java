package io.mooncake4j;

/** Stable codes carried by {@link MooncakeException}; the numbers never change meaning. */
public enum ErrorCode {
    /** An argument is wrong: the message says which and what to pass instead. */
    INVALID_ARGUMENT(1),
    /** Memory registration refused: empty, overlapping, heap buffer, or unknown region. */
    REGISTRATION(2),
    /** No usable transport for the requested protocol. */
    TRANSPORT_UNAVAILABLE(3),
    /** A segment could not be found or its descriptor fetched. */
    SEGMENT_NOT_FOUND(4),
    /** The metadata service (handshake server, etcd, ...) failed or answered nonsense. */
    METADATA(5),
    /** A synchronous transfer did not complete: the message carries the status. */
    TRANSFER_FAILED(6),
    /** The engine or resource was closed. */
    CLOSED(7),
    /** An I/O or system call failed. */
    IO(8),
    /** The configuration is invalid. */
    CONFIGURATION(9),
    /**
     * A peer did not prove that it holds the shared secret ({@code MC_AUTH_TOKEN}), or refused
     * ours; see docs/security.md.
     */
    AUTHENTICATION(10);

    private final int code;

    ErrorCode(int code) {
        this.code = code;
    }

    /** The stable numeric code. */
    public int code() {
        return code;
    }
}
