package io.mooncake4j.nativeio.fabric;

import io.mooncake4j.nativeio.NativeMemory;
import java.util.Locale;

/**
 * libfabric, opened at run time with {@code dlopen} so that a host without it can still load
 * Mooncake4j and be told why the EFA transport is unavailable. Never bundled: two copies of libfabric
 * in one process (e.g. with NCCL's aws-ofi-nccl) break EFA.
 *
 * <p>The library is {@value #DEFAULT_PATH} from the system search path, or the file named by the
 * environment variable {@value #PATH_SETTING} (system property {@code mc.libfabric.path}); on AWS
 * that is {@code /opt/amazon/efa/lib/libfabric.so.1}. Availability is computed once per process:
 * {@link #isAvailable()} never throws and {@link #unavailabilityCause()} keeps the reason.
 *
 * <p>{@link FabricNic} and {@link FabricMemoryRegion} wrap the natives per handle.
 */
public final class LibFabric {
    /** The setting that names the libfabric shared object to open. */
    public static final String PATH_SETTING = "MC_LIBFABRIC_PATH";
    /** The library opened when {@value #PATH_SETTING} is not set. */
    public static final String DEFAULT_PATH = "libfabric.so.1";

    /** {@code FI_MR_LOCAL}: every local buffer needs its registration's descriptor. */
    public static final long FI_MR_LOCAL = 1L << 2;
    /** {@code FI_MR_VIRT_ADDR}: remote addresses are virtual addresses, not region offsets. */
    public static final long FI_MR_VIRT_ADDR = 1L << 4;
    /** {@code FI_MR_ALLOCATED}: only allocated (backed) memory may be registered. */
    public static final long FI_MR_ALLOCATED = 1L << 5;
    /** {@code FI_MR_PROV_KEY}: the provider chooses the key; read it after registering. */
    public static final long FI_MR_PROV_KEY = 1L << 6;
    /** {@code FI_MR_ENDPOINT}: a region must be bound to the endpoint and enabled. */
    public static final long FI_MR_ENDPOINT = 1L << 8;
    /** {@code FI_MR_HMEM}: device memory must be registered with its iface and device. */
    public static final long FI_MR_HMEM = 1L << 10;
    /** {@code FI_HMEM}: the provider moves device (GPU) memory. */
    public static final long FI_HMEM = 1L << 47;
    /** {@code FI_HMEM_SYSTEM}: the {@code fi_hmem_iface} of host memory. */
    public static final int FI_HMEM_SYSTEM = 0;
    /** {@code FI_HMEM_CUDA}: the {@code fi_hmem_iface} of CUDA device memory. */
    public static final int FI_HMEM_CUDA = 1;
    /** {@code FI_ORDER_WAW}: RMA writes are processed in the order they were posted. */
    public static final long FI_ORDER_WAW = 1L << 4;
    /** {@code FI_EAGAIN}: resource temporarily unavailable (back-pressure). */
    public static final int FI_EAGAIN = 11;
    /** {@code FI_ENOSYS}: not implemented (e.g. a CUDA registration in a libfabric built without CUDA). */
    public static final int FI_ENOSYS = 38;
    /** {@code FI_EAVAIL}: an error entry is waiting on the completion queue. */
    public static final int FI_EAVAIL = 259;

    private static final String PATH;
    private static final Throwable UNAVAILABILITY_CAUSE;

    static {
        String path = System.getenv(PATH_SETTING);
        if (path == null || path.isBlank()) {
            path = System.getProperty(PATH_SETTING.toLowerCase(Locale.ROOT).replace('_', '.'));
        }
        if (path == null || path.isBlank()) {
            path = DEFAULT_PATH;
        }
        PATH = path;
        Throwable cause = NativeMemory.unavailabilityCause();
        if (cause == null) {
            try {
                String error = FabricNatives.load0(path);
                if (error != null) {
                    cause =
                            new UnsatisfiedLinkError(
                                    error
                                            + "; install libfabric (Debian: apt-get install"
                                            + " libfabric1; AWS: the EFA installer) or set "
                                            + PATH_SETTING
                                            + " to its libfabric.so.1");
                }
            } catch (Throwable t) {
                cause = t;
            }
        }
        UNAVAILABILITY_CAUSE = cause;
    }

    private LibFabric() {}

    /** Whether libfabric (and the JNI library) loaded. Never throws. */
    public static boolean isAvailable() {
        return UNAVAILABILITY_CAUSE == null;
    }

    /** Why libfabric is not available, or {@code null}. Never throws. */
    public static Throwable unavailabilityCause() {
        return UNAVAILABILITY_CAUSE;
    }

    /** The libfabric file this process opened (or tried to). */
    public static String path() {
        return PATH;
    }

    /** Throws an error carrying the cause when libfabric is not available. */
    public static void ensureAvailable() {
        if (UNAVAILABILITY_CAUSE != null) {
            UnsatisfiedLinkError e =
                    new UnsatisfiedLinkError("libfabric is not available: " + UNAVAILABILITY_CAUSE);
            e.initCause(UNAVAILABILITY_CAUSE);
            throw e;
        }
    }

    /** libfabric's text for a (positive) error number. */
    public static String strerror(int errno) {
        return isAvailable() ? FabricNatives.strerror0(errno) : "error " + errno;
    }
}
