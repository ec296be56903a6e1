package io.mooncake4j.samples.cli;

/**
 * An expected failure with a message for the user (a transfer failed, verification found a
 * mismatch): {@link Main} prints the message without a stack trace and exits with {@link
 * Main#FAILURE}.
 */
public class CommandFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public CommandFailure(String message) {
        super(message);
    }

    public CommandFailure(String message, Throwable cause) {
        super(message, cause);
    }
}
