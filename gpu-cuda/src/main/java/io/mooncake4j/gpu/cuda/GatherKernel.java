package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.CU_MEMHOSTALLOC_DEVICEMAP;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemHostAlloc;
import static jcuda.driver.JCudaDriver.cuMemHostGetDevicePointer;
import static jcuda.driver.JCudaDriver.cuMemsetD32;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.LongBuffer;
import java.nio.charset.StandardCharsets;
import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;

/**
 * The gather-copy kernel ({@code gather_copy.ptx}, loaded with {@code cuModuleLoadData}, no NVRTC):
 * collects up to {@link #MAX_ENTRIES} device-to-device copies and runs them as one launch. The list
 * travels in the launch's parameters, which the driver copies when the launch is enqueued, so its
 * memory can be refilled as soon as the launch call returns. Lists are written in place in
 * page-locked host memory, and a launch's {@code kernelParams} is a raw address there, so that a
 * launch allocates nothing and JCuda converts one plain pointer (not an array of pointers to a
 * buffer, which costs it a dozen JNI calls).
 *
 * <p>There are {@link #RING} lists that one thread fills ({@link #fill}) while another launches
 * the ones filled before ({@link #launch(int, CUstream)}), and one more, the direct list, built entry by
 * entry ({@link #add}, {@link #flush}) by a thread that launches it itself. The last launch of a batch
 * signals the batch's number into page-locked host memory when it is done ({@link #signalled()}),
 * which costs the host no driver call. Not thread-safe: its copier says which thread uses which
 * list when; {@link #signalled()} may be read by any.
 */
final class GatherKernel {
    /** Entries per launch: the list is 3 x 128 x 8 bytes of parameters, inside the 4 KiB every driver takes. */
    static final int MAX_ENTRIES = 128;
    /** Larger copies go to the driver's own copy ({@code cuMemcpyDtoDAsync}), one call each. */
    static final long MAX_ENTRY_BYTES = 1L << 20;
    /**
     * Bytes each thread block copies of one entry: 256 threads x 16 x 16-byte words, 4 in flight. On
     * an H200 a 128 x 64 KiB launch ran as fast as at 32 KiB and twice as fast as at 16 KiB
     * (GpuCopyBench, "gather kernel alone": 6.2-8.3 us of GPU time).
     */
    static final long BYTES_PER_CTA = 65536;

    private static final int THREADS = 256;
    // struct GatherList in gather_copy.cu: dst[128], src[128], len[128], batch, finished, signal
    private static final int BATCH_AT = 3 * 8 * MAX_ENTRIES;
    private static final int PARAM_BYTES = BATCH_AT + 3 * 8;
    // after the list: kernelParams[0], the list's address (the kernel's one parameter is the list)
    private static final int KERNEL_PARAMS_AT = PARAM_BYTES;
    /** Lists a launching thread may have waiting; each is one batch of at most {@link #MAX_ENTRIES}. */
    static final int RING = 16;
    private static final int DIRECT = RING;
    private static final int LIST_BYTES = (KERNEL_PARAMS_AT + 8 + 63) & ~63; // a list and its kernelParams slot
    private static final String PTX = "gather_copy.ptx";
    private static final VarHandle LONGS = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.nativeOrder());

    private final CUmodule module = new CUmodule();
    private final CUfunction function = new CUfunction();
    private final long bytesPerCta;
    private final Pointers.AllocatedHostPointer listMemory = new Pointers.AllocatedHostPointer(); // page-locked
    private final ByteBuffer lists; // RING + 1 lists of LIST_BYTES
    private final LongBuffer longs; // the same memory as longs, for bulk copies
    private final Pointer[] params = new Pointer[RING + 1]; // each list's kernelParams: its slot holding the list's address
    private final int[] entries = new int[RING + 1];
    private final int[] ctas = new int[RING + 1];
    private final Pointers.DevicePointer finished = new Pointers.DevicePointer(); // thread blocks done, on the device
    private final Pointer signal = new Pointer(); // the last batch signalled, in page-locked host memory
    private final ByteBuffer signalView;
    private int size; // of the direct list
    private long longest;

    /** Loads the module and allocates the signal word and counter in the current context. */
    GatherKernel() {
        this(BYTES_PER_CTA);
    }

    /** With another split of each entry over thread blocks (the bench compares them). */
    GatherKernel(long bytesPerCta) {
        this.bytesPerCta = bytesPerCta;
        CudaDriver.check(cuModuleLoadData(module, ptx()), "cuModuleLoadData(" + PTX + ")");
        try {
            CudaDriver.check(cuModuleGetFunction(function, module, "mc4j_gather_copy"), "cuModuleGetFunction");
            CudaDriver.check(cuMemHostAlloc(listMemory, (long) LIST_BYTES * (RING + 1), 0), "cuMemHostAlloc(gather lists)");
            CudaDriver.check(cuMemHostAlloc(signal, 8, CU_MEMHOSTALLOC_DEVICEMAP), "cuMemHostAlloc(gather signal)");
            CudaDriver.check(cuMemAlloc(finished, 4), "cuMemAlloc(gather counter)");
            CudaDriver.check(cuMemsetD32(finished, 0, 1), "cuMemsetD32(gather counter)");
        } catch (RuntimeException e) {
            try {
                unload();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        lists = listMemory.getByteBuffer(0, (long) LIST_BYTES * (RING + 1)).order(ByteOrder.nativeOrder());
        longs = lists.asLongBuffer();
        signalView = signal.getByteBuffer(0, 8).order(ByteOrder.nativeOrder());
        LONGS.setRelease(signalView, 0, 0L);
        Pointers.DevicePointer signalOnDevice = new Pointers.DevicePointer();
        CudaDriver.check(cuMemHostGetDevicePointer(signalOnDevice, signal, 0), "cuMemHostGetDevicePointer");
        for (int l = 0; l <= RING; l++) {
            int at = l * LIST_BYTES;
            lists.putLong(at + KERNEL_PARAMS_AT, listMemory.address() + at);
            params[l] = Pointers.host(listMemory.address() + at + KERNEL_PARAMS_AT);
            lists.putLong(at + BATCH_AT + 8, finished.address());
            lists.putLong(at + BATCH_AT + 16, signalOnDevice.address());
        }
    }

    /** The last batch whose final launch is done (0 before any). Any thread. */
    long signalled() {
        return (long) LONGS.getAcquire(signalView, 0);
    }

    /**
     * Fills ring list {@code slot} (0 to {@link #RING} - 1, not waiting to be launched) with a whole
     * batch: {@code n} (1 to {@link #MAX_ENTRIES}) copies of at most {@link #MAX_ENTRY_BYTES}, the
     * longest {@code longest} bytes, in three bulk copies; its launch is the last operation of
     * batch {@code batch} (positive), which {@link #signalled()} then reports.
     */
    void fill(int slot, long[] dst, long[] src, long[] len, int n, long longest, long batch) {
        if (slot < 0 || slot >= RING || n < 1 || n > MAX_ENTRIES || batch <= 0) {
            throw new IllegalStateException("fill of list " + slot + " with " + n + " copies for batch " + batch
                    + " (lists 0-" + (RING - 1) + ", 1-" + MAX_ENTRIES + " copies, batch > 0)");
        }
        int at = slot * LIST_BYTES / 8;
        longs.put(at, dst, 0, n);
        longs.put(at + MAX_ENTRIES, src, 0, n);
        longs.put(at + 2 * MAX_ENTRIES, len, 0, n);
        lists.putLong(slot * LIST_BYTES + BATCH_AT, batch);
        entries[slot] = n;
        ctas[slot] = ctasFor(longest);
    }

    /** Launches ring list {@code slot}, filled before, on {@code stream}; the list is free again on return. */
    void launch(int slot, CUstream stream) {
        CudaDriver.check(cuLaunchKernel(function, ctas[slot], entries[slot], 1, THREADS, 1, 1, 0, stream, params[slot], null),
                "cuLaunchKernel(mc4j_gather_copy)");
    }

    /** Adds one copy to the direct list, launching it first on {@code stream} when it is full. */
    void add(long dst, long src, long len, CUstream stream) {
        if (size == MAX_ENTRIES) {
            launchDirect(0, stream);
        }
        int at = DIRECT * LIST_BYTES;
        lists.putLong(at + 8 * size, dst);
        lists.putLong(at + 8 * (MAX_ENTRIES + size), src);
        lists.putLong(at + 8 * (2 * MAX_ENTRIES + size), len);
        longest = Math.max(longest, len);
        size++;
    }

    /**
     * Launches what was added to the direct list, if anything, on {@code stream} as the last
     * operation of batch {@code batch} (positive), which {@link #signalled()} then reports when done.
     *
     * @return whether there was anything to launch (otherwise nothing will signal the batch)
     */
    boolean flush(long batch, CUstream stream) {
        if (size == 0) {
            return false;
        }
        launchDirect(batch, stream);
        return true;
    }

    /** Forgets what was added to the direct list and not launched (its batch failed while being enqueued). */
    void discard() {
        size = 0;
        longest = 0;
    }

    private void launchDirect(long batch, CUstream stream) {
        entries[DIRECT] = size;
        ctas[DIRECT] = ctasFor(longest);
        size = 0;
        longest = 0;
        lists.putLong(DIRECT * LIST_BYTES + BATCH_AT, batch);
        launch(DIRECT, stream);
    }

    private int ctasFor(long longest) {
        return (int) Math.max(1, Math.min(MAX_ENTRY_BYTES / bytesPerCta, (longest + bytesPerCta - 1) / bytesPerCta));
    }

    /** Unloads the module and frees its memory; call with its context current and its launches done. */
    void unload() {
        // each is a no-op on what was never allocated (a null handle), so this also cleans up a failed constructor
        cuMemFree(finished);
        cuMemFreeHost(signal);
        cuMemFreeHost(listMemory);
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
