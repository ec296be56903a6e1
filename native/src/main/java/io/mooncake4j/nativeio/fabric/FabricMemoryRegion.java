package io.mooncake4j.nativeio.fabric;

import java.util.concurrent.atomic.AtomicBoolean;

/** One {@code fi_mr} on one NIC: its remote key and local descriptor. Close it before the NIC. */
public final class FabricMemoryRegion implements AutoCloseable {
    private final long handle;
    private final long key;
    private final long descriptor;
    private final AtomicBoolean closed = new AtomicBoolean();

    FabricMemoryRegion(long handle, long key, long descriptor) {
        this.handle = handle;
        this.key = key;
        this.descriptor = descriptor;
    }

    long handle() {
        return handle;
    }

    /** {@code fi_mr_key}: what a peer passes as the remote key. */
    public long key() {
        return key;
    }

    /** {@code fi_mr_desc}: what every local operation on this memory passes (FI_MR_LOCAL). */
    public long descriptor() {
        return descriptor;
    }

    /**
     * Closes the registration. Call only when no operation on this memory is outstanding.
     * Idempotent.
     *
     * @throws FabricException when the provider refuses (e.g. the region is still in use)
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            FabricException.check("fi_close(mr)", FabricNatives.mrClose0(handle));
        }
    }
}
