package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.spi.DeviceAllocation;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Device memory from {@code cuMemAlloc}, or ({@code device} {@link CudaDriver#HOST}) page-locked host
 * memory from {@code cuMemHostAlloc}; freed once by {@link #close()}.
 */
final class CudaAllocation implements DeviceAllocation {
    private final CudaDriver driver;
    private final int device;
    private final long address;
    private final long length;
    private final AtomicBoolean closed = new AtomicBoolean();

    CudaAllocation(CudaDriver driver, int device, long address, long length) {
        this.driver = driver;
        this.device = device;
        this.address = address;
        this.length = length;
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
        driver.ranges().forget(address, length);
        try (ContextScope ignored = driver.enter(device)) {
            CudaDriver.check(cuMemFree(Pointers.device(address)), "cuMemFree");
        }
    }

    @Override
    public String toString() {
        return "CudaAllocation[0x" + Long.toHexString(address) + ", " + length + " bytes, " + location() + "]";
    }
}
