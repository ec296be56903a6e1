package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuMemFreeHost;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.spi.DeviceAllocation;
import java.util.concurrent.atomic.AtomicBoolean;

/** Page-locked host memory from {@code cuMemHostAlloc} (portable to every context), freed once by {@link #close()}. */
final class PinnedHostAllocation implements DeviceAllocation {
    private final CudaDriver driver;
    private final long address;
    private final long length;
    private final AtomicBoolean closed = new AtomicBoolean();

    PinnedHostAllocation(CudaDriver driver, long address, long length) {
        this.driver = driver;
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
        return MemoryLocation.CPU;
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            try (ContextScope ignored = driver.enter(0)) {
                CudaDriver.check(cuMemFreeHost(Pointers.host(address)), "cuMemFreeHost");
            }
        }
    }

    @Override
    public String toString() {
        return "PinnedHostAllocation[0x" + Long.toHexString(address) + ", " + length + " bytes]";
    }
}
