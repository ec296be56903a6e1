package io.mooncake4j.spi;

import java.util.concurrent.CompletableFuture;

/**
 * Same-process copies where either side may be device memory, asynchronous on the copier's own
 * stream. Thread-safe; copies submitted by one thread complete in submission order.
 */
public interface DeviceCopier extends AutoCloseable {
    /**
     * Enqueues {@code n} copies, {@code len[i]} bytes from {@code src[i]} to {@code dst[i]}, each side
     * host or device memory in any mix; the direction of each is taken from the pointers. The arrays
     * are read before this returns and may be reused at once. Small device-to-device copies of one
     * batch are done by one kernel launch, not one launch each.
     *
     * @return completed, on the copier's own thread and never on a driver callback, when every copy
     *     of the batch is done; completed exceptionally with a {@link io.mooncake4j.MooncakeException}
     *     when the device reports an error or the batch is not done within the copier's bound
     * @throws io.mooncake4j.MooncakeException when an argument is wrong, an address is unknown to the
     *     device library, or the copier was closed
     */
    CompletableFuture<Void> copy(long[] dst, long[] src, long[] len, int n);

    /**
     * Waits (bounded) for the copies in flight, then releases the stream and the copier's thread.
     * Idempotent.
     */
    @Override
    void close();
}
