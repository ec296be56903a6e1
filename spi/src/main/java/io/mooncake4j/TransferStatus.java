package io.mooncake4j;

/** The state of one transfer request, with Mooncake's numeric values. */
public enum TransferStatus {
    /** Not submitted yet. */
    WAITING(0),
    /** Submitted and in flight. */
    PENDING(1),
    /**
     * Refused before anything was sent: unregistered local memory, unknown segment, remote range
     * outside the segment's buffers, length 0 or address overflow.
     */
    INVALID(2),
    /** Cancelled by the caller or by closing the engine. */
    CANCELED(3),
    /** Every byte was moved. */
    COMPLETED(4),
    /** The deadline ({@code MC_TRANSFER_TIMEOUT}) passed before completion. */
    TIMEOUT(5),
    /** The target refused the request or the connection failed. */
    FAILED(6);

    private static final TransferStatus[] BY_CODE = values();
    private final int code;

    TransferStatus(int code) {
        this.code = code;
    }

    /** Mooncake's numeric value. */
    public int code() {
        return code;
    }

    /** Whether the request has ended (any state but WAITING and PENDING). */
    public boolean isFinal() {
        return code > PENDING.code;
    }

    /** The status for Mooncake's numeric value. */
    public static TransferStatus ofCode(int code) {
        if (code < 0 || code >= BY_CODE.length) {
            throw new IllegalArgumentException("no transfer status with code " + code);
        }
        return BY_CODE[code];
    }
}
