package io.mooncake4j;

import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Page-aligned host memory allocated and registered by {@link TransferEngine#allocate} (Mooncake's
 * managed buffer). Any size, beyond 2 GiB too. {@link #close()} unregisters and frees it; it is not
 * freed when the engine closes, because callers may still hold its address.
 */
public final class HostMemory implements AutoCloseable {
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

    /** Unregisters (waiting for in-flight transfers on it) and frees the memory. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            try {
                engine.unregisterIfRegistered(region.address());
            } finally {
                NativeMemory.unmap(region.address(), region.length());
            }
        }
    }
}
