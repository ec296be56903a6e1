package io.mooncake4j;

import io.mooncake4j.spi.DeviceAllocation;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Device memory (GPU memory, {@code cuda:N}) allocated and registered by {@link
 * TransferEngine#allocate(long, MemoryLocation)}: {@link HostMemory}'s sibling. {@link #close()}
 * unregisters and frees it; it is not freed when the engine closes, because callers may still hold
 * its address.
 *
 * <p>The memory is never freed while a transfer can still touch it: when transfers do not let go of
 * it even after the transport stopped them, {@link #close()} keeps it allocated, logs an error and
 * counts it in {@link #leakedBytes()}, instead of letting a late byte land in freed or reused memory.
 */
public final class DeviceMemory implements AutoCloseable {
    private static final AtomicLong LEAKED_BYTES = new AtomicLong();

    private final TransferEngine engine;
    private final MemoryRegion region;
    private final DeviceAllocation allocation;
    private final AtomicBoolean closed = new AtomicBoolean();

    DeviceMemory(TransferEngine engine, MemoryRegion region, DeviceAllocation allocation) {
        this.engine = engine;
        this.region = region;
        this.allocation = allocation;
    }

    /** The first byte's device address (a unified virtual address). */
    public long address() {
        return region.address();
    }

    /** The length in bytes. */
    public long length() {
        return region.length();
    }

    /** Where it lives ({@code cuda:N}). */
    public MemoryLocation location() {
        return region.location();
    }

    /** The registered region. */
    public MemoryRegion region() {
        return region;
    }

    /**
     * Unregisters the memory (waiting for transfers on it, see {@link
     * TransferEngine#unregisterMemory(long)}) and frees it, or keeps it allocated when transfers still
     * use it (see the class comment). Idempotent; never throws for memory still in use.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        engine.unregisterAndFree(region, allocation::close, LEAKED_BYTES);
    }

    /**
     * Bytes that {@link #close()} kept allocated in this process because transfers still used them
     * (should stay 0; anything else is logged as an error when it happens).
     */
    public static long leakedBytes() {
        return LEAKED_BYTES.get();
    }
}
