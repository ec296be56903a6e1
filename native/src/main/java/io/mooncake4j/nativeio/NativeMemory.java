package io.mooncake4j.nativeio;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * Raw native memory operations backed by the {@code libmooncake4j} JNI library.
 *
 * <p>Availability is computed once: {@link #isAvailable()} never throws, {@link
 * #unavailabilityCause()} keeps why loading failed, and every operation calls {@link
 * #ensureAvailable()} implicitly through class initialisation of the holder.
 *
 * <p>These methods trust their arguments about addresses: callers (the engine) validate that an
 * address lies in memory they own before calling.
 */
public final class NativeMemory {
    private static final Throwable UNAVAILABILITY_CAUSE;
    private static final int PAGE_SIZE;

    static {
        Throwable cause = null;
        int pageSize = 4096;
        try {
            NativeLibraryLoader.load("mooncake4j", NativeMemory.class);
            pageSize = pageSize0();
        } catch (Throwable t) {
            cause = t;
        }
        UNAVAILABILITY_CAUSE = cause;
        PAGE_SIZE = pageSize;
    }

    private NativeMemory() {}

    /** Whether the JNI library loaded. Never throws. */
    public static boolean isAvailable() {
        return UNAVAILABILITY_CAUSE == null;
    }

    /** Why the library did not load, or {@code null} when it did. */
    public static Throwable unavailabilityCause() {
        return UNAVAILABILITY_CAUSE;
    }

    /** Throws an error carrying the load failure when the library is not available. */
    public static void ensureAvailable() {
        if (UNAVAILABILITY_CAUSE != null) {
            UnsatisfiedLinkError e =
                    new UnsatisfiedLinkError(
                            "the mooncake4j JNI library is not available: " + UNAVAILABILITY_CAUSE);
            e.initCause(UNAVAILABILITY_CAUSE);
            throw e;
        }
    }

    /** The system page size in bytes. */
    public static int pageSize() {
        return PAGE_SIZE;
    }

    /**
     * The native address of a direct buffer's first byte (its position is ignored).
     *
     * @throws IllegalArgumentException for a heap buffer
     */
    public static long address(ByteBuffer buffer) {
        Objects.requireNonNull(buffer, "buffer");
        if (!buffer.isDirect()) {
            throw new IllegalArgumentException(
                    "a heap ByteBuffer has no stable native address; use ByteBuffer.allocateDirect"
                            + " or memory from TransferEngine.allocate");
        }
        ensureAvailable();
        return address0(buffer);
    }

    /**
     * A little-endian direct buffer over {@code [address, address + length)}. The buffer does not own
     * the memory: whoever does must keep it alive while the buffer is in use.
     */
    public static ByteBuffer wrap(long address, int length) {
        if (address == 0 || length < 0) {
            throw new IllegalArgumentException(
                    "cannot wrap address " + Long.toUnsignedString(address) + " length " + length);
        }
        ensureAvailable();
        return wrap0(address, length).order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * Maps {@code length} bytes of zeroed, page-aligned anonymous memory (any size, beyond 2 GiB
     * too). Free it with {@link #unmap}.
     *
     * @throws OutOfMemoryError naming the system error when the mapping fails
     */
    public static long map(long length) {
        if (length <= 0) {
            throw new IllegalArgumentException("length must be positive, got " + length);
        }
        ensureAvailable();
        long result = map0(length);
        if (result < 0) {
            throw new OutOfMemoryError(
                    "mmap of " + length + " bytes failed: " + strerror0((int) -result));
        }
        return result;
    }

    /** Unmaps memory from {@link #map}. */
    public static void unmap(long address, long length) {
        ensureAvailable();
        int rc = unmap0(address, length);
        if (rc < 0) {
            throw new IllegalStateException(
                    "munmap of "
                            + length
                            + " bytes at "
                            + Long.toHexString(address)
                            + " failed: "
                            + strerror0(-rc));
        }
    }

    /** Copies {@code length} bytes; the ranges may overlap. */
    public static void copy(long dst, long src, long length) {
        if (length > 0) {
            copy0(dst, src, length);
        }
    }

    /** Sets {@code length} bytes at {@code dst} to {@code value}. */
    public static void fill(long dst, long length, int value) {
        if (length > 0) {
            fill0(dst, length, value);
        }
    }

    private static native long address0(ByteBuffer buffer);

    private static native ByteBuffer wrap0(long address, int length);

    private static native long map0(long length);

    private static native int unmap0(long address, long length);

    private static native void copy0(long dst, long src, long length);

    private static native void fill0(long dst, long length, int value);

    private static native int pageSize0();

    private static native String strerror0(int errnum);
}
