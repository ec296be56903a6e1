package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuCtxGetCurrent;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import jcuda.Pointer;
import jcuda.driver.CUcontext;

/** Test helpers: device memory read and written with the driver's synchronous copies, host memory by mmap. */
final class GpuMemory {
    private GpuMemory() {}

    /**
     * Skips the calling test, saying why, where no CUDA device can be used; fails it instead when the
     * system property {@code mooncake4j.gpu.required} is true (the GPU runner sets it, so that a GPU
     * machine whose driver cannot be reached does not pass by skipping everything).
     */
    static CudaDeviceMemoryProvider requireGpu() {
        CudaDeviceMemoryProvider cuda = new CudaDeviceMemoryProvider();
        if (Boolean.getBoolean("mooncake4j.gpu.required") && !cuda.isAvailable()) {
            throw new AssertionError("mooncake4j.gpu.required is set but CUDA is unavailable", cuda.unavailabilityCause());
        }
        assumeTrue(cuda.isAvailable(), () -> "skipped: no usable CUDA device: " + cuda.unavailabilityCause().getMessage());
        return cuda;
    }

    /** Bytes whose value depends on seed and index, so a misplaced block shows. */
    static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (i * 31 + seed * 7 + (i >>> 11));
        }
        return b;
    }

    static void write(long deviceAddress, byte[] bytes) {
        try (ContextScope ignored = CudaDriver.instance().enter(0)) {
            CudaDriver.check(cuMemcpyHtoD(Pointers.device(deviceAddress), Pointer.to(bytes), bytes.length), "cuMemcpyHtoD");
        }
    }

    static byte[] read(long deviceAddress, int length) {
        byte[] b = new byte[length];
        try (ContextScope ignored = CudaDriver.instance().enter(0)) {
            CudaDriver.check(cuMemcpyDtoH(Pointer.to(b), Pointers.device(deviceAddress), length), "cuMemcpyDtoH");
        }
        return b;
    }

    /** A context whose handle a test can read. */
    static final class Context extends CUcontext {
        long value() {
            return getNativePointer();
        }
    }

    /** The calling thread's current context (handle 0: none). */
    static Context currentContext() {
        Context c = new Context();
        CudaDriver.check(cuCtxGetCurrent(c), "cuCtxGetCurrent");
        return c;
    }

    /** Pageable host memory (the engine's own kind: anonymous mmap). */
    static final class Host implements AutoCloseable {
        final long address;
        final int length;

        Host(int length) {
            this.length = length;
            this.address = NativeMemory.map(length);
        }

        ByteBuffer buffer() {
            return NativeMemory.wrap(address, length);
        }

        void put(int offset, byte[] bytes) {
            buffer().put(offset, bytes);
        }

        byte[] get(int offset, int len) {
            byte[] b = new byte[len];
            buffer().get(offset, b);
            return b;
        }

        @Override
        public void close() {
            NativeMemory.unmap(address, length);
        }
    }
}
