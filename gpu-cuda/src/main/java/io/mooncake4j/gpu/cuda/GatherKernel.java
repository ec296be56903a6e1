package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;

/**
 * The gather-copy kernel ({@code gather_copy.ptx}, loaded with {@code cuModuleLoadData}, no NVRTC):
 * collects up to {@link #MAX_ENTRIES} device-to-device copies and runs them as one launch. The list
 * travels in the launch's parameters, which the driver copies when the launch is enqueued, so the
 * list can be refilled at once. Not thread-safe: its copier serialises use.
 */
final class GatherKernel {
    /** Entries per launch: 3 x 128 x 8 bytes of parameters, inside the 4 KiB every driver takes. */
    static final int MAX_ENTRIES = 128;
    /** Larger copies go to the driver's own copy ({@code cuMemcpyDtoDAsync}), one call each. */
    static final long MAX_ENTRY_BYTES = 1L << 20;

    /** Bytes each thread block copies of one entry: 256 threads x 2 x 16-byte words. */
    static final long BYTES_PER_CTA = 8192;

    private static final int THREADS = 256;
    private static final String PTX = "gather_copy.ptx";

    private final CUmodule module = new CUmodule();
    private final CUfunction function = new CUfunction();
    private final long bytesPerCta;
    // dst[128], src[128], len[128], in native memory so that a launch copies it from there directly
    private final ByteBuffer list = ByteBuffer.allocateDirect(3 * 8 * MAX_ENTRIES).order(ByteOrder.nativeOrder());
    private final Pointer params = Pointer.to(Pointer.to(list));
    private int size;
    private long longest;

    /** Loads the module into the current context. */
    GatherKernel() {
        this(BYTES_PER_CTA);
    }

    /** With another split of each entry over thread blocks (the bench compares them). */
    GatherKernel(long bytesPerCta) {
        this.bytesPerCta = bytesPerCta;
        CudaDriver.check(cuModuleLoadData(module, ptx()), "cuModuleLoadData(" + PTX + ")");
        try {
            CudaDriver.check(cuModuleGetFunction(function, module, "mc4j_gather_copy"), "cuModuleGetFunction");
        } catch (RuntimeException e) {
            cuModuleUnload(module);
            throw e;
        }
    }

    /** Adds one copy, launching the list first on {@code stream} when it is full. */
    void add(long dst, long src, long len, CUstream stream) {
        if (size == MAX_ENTRIES) {
            flush(stream);
        }
        list.putLong(8 * size, dst);
        list.putLong(8 * (MAX_ENTRIES + size), src);
        list.putLong(8 * (2 * MAX_ENTRIES + size), len);
        longest = Math.max(longest, len);
        size++;
    }

    /** Launches what was added, if anything, on {@code stream}. */
    void flush(CUstream stream) {
        if (size == 0) {
            return;
        }
        int ctas = (int) Math.max(1, Math.min(MAX_ENTRY_BYTES / bytesPerCta, (longest + bytesPerCta - 1) / bytesPerCta));
        int entries = size;
        size = 0;
        longest = 0;
        CudaDriver.check(cuLaunchKernel(function, ctas, entries, 1, THREADS, 1, 1, 0, stream, params, null), "cuLaunchKernel(mc4j_gather_copy)");
    }

    /** Unloads the module; call with its context current. */
    void unload() {
        CudaDriver.check(cuModuleUnload(module), "cuModuleUnload");
    }

    private static String ptx() {
        try (InputStream in = GatherKernel.class.getResourceAsStream(PTX)) {
            if (in == null) {
                throw new MooncakeException(ErrorCode.IO, PTX + " is missing from the mooncake4j-gpu-cuda jar: rebuild it");
            }
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
