package io.mooncake4j;

import java.util.Objects;

/** The one unchecked exception of the Mooncake4j API; {@link #code()} says what kind of failure. */
public class MooncakeException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final ErrorCode code;

    public MooncakeException(ErrorCode code, String message) {
        super(message);
        this.code = Objects.requireNonNull(code, "code");
    }

    public MooncakeException(ErrorCode code, String message, Throwable cause) {
        super(message, cause);
        this.code = Objects.requireNonNull(code, "code");
    }

    /** The stable error code. */
    public ErrorCode code() {
        return code;
    }

    @Override
    public String getMessage() {
        return "[" + code + "] " + super.getMessage();
    }
}
