package io.mooncake4j.djl;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.util.Objects;

/**
 * The unchecked exception of the KV cache connector: a {@link MooncakeException} (so callers may
 * catch either) that also carries a {@link KvError}.
 */
public class KvException extends MooncakeException {
    private static final long serialVersionUID = 1L;
    private final KvError error;
    private final String detail;

    /** An exception with a KV error and a message that says what to do. */
    public KvException(KvError error, String message) {
        this(error, message, null);
    }

    /** An exception with a KV error, a message and a cause. */
    public KvException(KvError error, String message, Throwable cause) {
        super(engineCode(Objects.requireNonNull(error, "error")), message, cause);
        this.error = error;
        this.detail = message;
    }

    /** The KV connector's code. */
    public KvError error() {
        return error;
    }

    /** The message without the code. */
    public String detail() {
        return detail;
    }

    /** {@code [<KvError>] <detail>}; {@link #code()} still gives the engine's error code. */
    @Override
    public String getMessage() {
        return "[" + error + "] " + detail;
    }

    private static ErrorCode engineCode(KvError e) {
        switch (e) {
            case INVALID_PARAMS:
            case LAYOUT_MISMATCH:
            case UNSUPPORTED_DTYPE:
                return ErrorCode.INVALID_ARGUMENT;
            case CLOSED:
                return ErrorCode.CLOSED;
            case POOL_EXHAUSTED:
                return ErrorCode.REGISTRATION;
            default:
                return ErrorCode.TRANSFER_FAILED;
        }
    }
}
