package io.mooncake4j;

import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Page-aligned host memory allocated and registered by {@link TransferEngine#allocate} (Mooncake's
 * managed buffer). Any size, beyond 2 GiB too. {@link #close()} unregisters and frees it; it is not
 * freed when the engine closes, because callers may still hold its address.
 *
 * <p>The memory is never unmapped while a transfer can still touch it: when transfers (a peer's
 * request being served, or this engine's own) do not let go of it even after the transport stopped
 * them, {@link #close()} keeps the mapping, logs an error and counts it in {@link #leakedBytes()},
 * instead of letting a late byte land in freed or reused memory.
 */
public final class HostMemory implements AutoCloseable {
    private static final AtomicLong LEAKED_BYTES = new AtomicLong();

    private final TransferEngine engine;
    private final MemoryRegion region;
    private final AtomicBoolean closed = new AtomicBoolean();

    HostMemory(TransferEngine engine, MemoryRegion region) {
        this.engine = engine;
        this.region = region;
    }

    /** The first byte's address. */
    public long address() {
        return region.address();
    }

    /** The length in bytes. */
    public long length() {
        return region.length();
    }

    /** The registered region. */
    public MemoryRegion region() {
        return region;
    }

    /**
     * A little-endian direct buffer over {@code [offset, offset + length)}; valid until {@link
     * #close()}.
     */
    public ByteBuffer buffer(long offset, int length) {
        ensureOpen();
        if (offset < 0 || length < 0 || offset + length > region.length()) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "range [" + offset + ", " + (offset + length) + ") is outside this "
                            + region.length() + "-byte allocation");
        }
        return NativeMemory.wrap(region.address() + offset, length);
    }

    /** A buffer over the whole allocation (at most 2 GiB - 1 bytes). */
    public ByteBuffer buffer() {
        if (region.length() > Integer.MAX_VALUE) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "allocation of " + region.length() + " bytes is larger than one ByteBuffer: use buffer(offset, length)");
        }
        return buffer(0, (int) region.length());
    }

    private void ensureOpen() {
        if (closed.get()) {
            throw new MooncakeException(ErrorCode.CLOSED, "host memory " + region + " was closed");
        }
    }

    /**
     * Unregisters the memory (waiting for transfers on it, see {@link
     * TransferEngine#unregisterMemory(long)}) and frees it, or keeps it mapped when transfers still
     * use it (see the class comment). Idempotent; never throws for memory still in use.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        engine.unregisterAndFree(region, () -> NativeMemory.unmap(region.address(), region.length()), LEAKED_BYTES);
    }

    /**
     * Bytes that {@link #close()} kept mapped in this process because transfers still used them
     * (should stay 0; anything else is logged as an error when it happens).
     */
    public static long leakedBytes() {
        return LEAKED_BYTES.get();
    }
}
