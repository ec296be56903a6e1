package io.mooncake4j.spi;

/**
 * Asynchronous copies between device memory and page-locked host memory, for a transport that moves
 * device memory through a host path (TCP stages it through pinned buffers). Opened with {@link
 * DeviceMemoryProvider#openStager()}; each copy is enqueued on the stager's own stream (one per
 * device, created on first use) and named by a ticket, so the caller overlaps the copies with its
 * socket I/O and waits only for the copy whose buffer it needs next.
 *
 * <p>The direction of every copy is explicit: {@link #toHost} device to host, {@link #toDevice}
 * host to device. The host side should be memory from {@link DeviceMemoryProvider#allocatePinned},
 * so that the copy is truly asynchronous. No call changes the calling thread's current device or
 * context.
 *
 * <p>Used by one thread at a time (a lane's sender, a lane's receiver, a served connection); not
 * thread safe.
 */
public interface DeviceStager extends AutoCloseable {
    /**
     * Enqueues a copy of {@code length} bytes from device memory at {@code device} to host memory at
     * {@code host}.
     *
     * @return the copy's ticket, for {@link #await}; tickets increase
     * @throws io.mooncake4j.MooncakeException when {@code device} is not device memory, the device
     *     reports an error, or the stager was closed
     */
    long toHost(long host, long device, long length);

    /**
     * Enqueues a copy of {@code length} bytes from host memory at {@code host} to device memory at
     * {@code device}.
     *
     * @return the copy's ticket, for {@link #await}; tickets increase
     * @throws io.mooncake4j.MooncakeException as {@link #toHost}
     */
    long toDevice(long device, long host, long length);

    /**
     * Waits until the copy of {@code ticket} is done (its bytes are in the destination), at most the
     * stager's bound (30 s). A ticket already waited for returns at once. At most {@value
     * #MAX_IN_FLIGHT} copies may be in flight: a copy enqueued beyond that first waits for the
     * oldest.
     *
     * @throws io.mooncake4j.MooncakeException ({@code TRANSFER_FAILED}) when the copy failed or did
     *     not end within the bound; the stager should then be closed and a new one opened
     */
    void await(long ticket);

    /** Copies one stager keeps in flight at most. */
    int MAX_IN_FLIGHT = 64;

    /** Waits (bounded) for the copies in flight, then releases the streams. Idempotent. */
    @Override
    void close();
}
