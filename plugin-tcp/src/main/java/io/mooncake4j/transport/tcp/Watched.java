package io.mooncake4j.transport.tcp;

/**
 * A connection the watchdog looks after: while {@link #busy()} it must move a byte at least every
 * stall timeout, or the watchdog calls {@link #kill}.
 */
abstract class Watched {
    private volatile long lastProgress = System.nanoTime();

    /** Records that bytes moved. */
    final void progress() {
        lastProgress = System.nanoTime();
    }

    final long lastProgress() {
        return lastProgress;
    }

    /** Whether a request is in progress (so silence means a stall). */
    abstract boolean busy();

    /** Closes the connection; idempotent; never throws. */
    abstract void kill(String reason);
}
