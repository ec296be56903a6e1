package io.mooncake4j.internal.handshake;

import java.io.IOException;

/**
 * A peer sent bytes that are not a valid handshake frame (bad length, truncated, not a JSON
 * object). The connection cannot be resynchronised and must be closed.
 */
public final class MalformedFrameException extends IOException {
    private static final long serialVersionUID = 1L;

    public MalformedFrameException(String message) {
        super(message);
    }

    public MalformedFrameException(String message, Throwable cause) {
        super(message, cause);
    }
}
