package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuIpcCloseMemHandle;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceIpcMapping;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Memory this process holds through the driver, released once by {@link #close()}: device memory
 * from {@code cuMemAlloc} ({@code cuMemFree}); page-locked host memory from {@code cuMemHostAlloc}
 * ({@code device} {@link CudaDriver#HOST}, {@code cuMemFreeHost}); or a part of another process's
 * allocation mapped here by {@code cuIpcOpenMemHandle} ({@code cuIpcCloseMemHandle}).
 */
final class CudaAllocation implements DeviceAllocation, DeviceIpcMapping {
    private final CudaDriver driver;
    private final int device;
    private final long base; // what the driver returned: the allocation, or the whole mapping
    private final long size;
    private final long address; // what the user sees: base + offset
    private final long length;
    private final boolean mapped;
    private final AtomicBoolean closed = new AtomicBoolean();

    private CudaAllocation(CudaDriver driver, int device, long base, long size, long offset, long length, boolean mapped) {
        this.driver = driver;
        this.device = device;
        this.base = base;
        this.size = size;
        this.address = base + offset;
        this.length = length;
        this.mapped = mapped;
    }

    /** {@code bytes} from {@code cuMemAlloc} at {@code address}. */
    static CudaAllocation allocated(CudaDriver driver, int device, long address, long bytes) {
        return new CudaAllocation(driver, device, address, bytes, 0, bytes, false);
    }

    /** {@code bytes} of page-locked host memory from {@code cuMemHostAlloc} at {@code address}. */
    static CudaAllocation pinned(CudaDriver driver, long address, long bytes) {
        return new CudaAllocation(driver, CudaDriver.HOST, address, bytes, 0, bytes, false);
    }

    /** {@code length} bytes at {@code offset} of a peer's allocation of {@code size} bytes mapped at {@code base}. */
    static CudaAllocation mapped(CudaDriver driver, int device, long base, long size, long offset, long length) {
        return new CudaAllocation(driver, device, base, size, offset, length, true);
    }

    @Override
    public long address() {
        return address;
    }

    @Override
    public long length() {
        return length;
    }

    @Override
    public MemoryLocation location() {
        return device == CudaDriver.HOST ? MemoryLocation.CPU : MemoryLocation.cuda(device);
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        if (device == CudaDriver.HOST) {
            try (ContextScope ignored = driver.enter(0)) {
                CudaDriver.check(cuMemFreeHost(Pointers.host(address)), "cuMemFreeHost");
            }
            return;
        }
        driver.ranges().forget(base, size);
        try (ContextScope ignored = driver.enter(device)) {
            if (mapped) {
                CudaDriver.check(cuIpcCloseMemHandle(Pointers.device(base)), "cuIpcCloseMemHandle");
            } else {
                CudaDriver.check(cuMemFree(Pointers.device(base)), "cuMemFree");
            }
        }
    }

    @Override
    public String toString() {
        return (mapped ? "CudaIpcMapping[0x" : "CudaAllocation[0x") + Long.toHexString(address) + ", " + length
                + " bytes, " + location() + "]";
    }
}
