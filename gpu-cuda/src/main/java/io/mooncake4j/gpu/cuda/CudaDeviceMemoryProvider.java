package io.mooncake4j.gpu.cuda;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceCopier;
import io.mooncake4j.spi.DeviceIpcHandle;
import io.mooncake4j.spi.DeviceIpcMapping;
import io.mooncake4j.spi.DeviceMemoryProvider;
import io.mooncake4j.spi.DeviceStager;
import java.util.function.Supplier;

/**
 * {@code cuda:N} memory through JCuda's driver API. Loads nothing until first asked; every JCuda
 * class is touched only behind {@link CudaAvailability}, so this class loads without JCuda.
 */
public final class CudaDeviceMemoryProvider extends DeviceMemoryProvider {
    @Override
    public String kind() {
        return "cuda";
    }

    @Override
    public boolean isAvailable() {
        return CudaAvailability.cause() == null;
    }

    @Override
    public Throwable unavailabilityCause() {
        return CudaAvailability.cause();
    }

    @Override
    public int deviceCount() {
        return isAvailable() ? driver().deviceCount() : 0;
    }

    @Override
    public MemoryLocation locate(long address) {
        return driver().locate(address);
    }

    @Override
    public DeviceAllocation allocate(MemoryLocation location, long bytes) {
        if (!location.isCuda()) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "this provider allocates cuda:N memory, not " + location + ": allocate host memory with TransferEngine.allocate");
        }
        return driver().allocate(location.index(), bytes);
    }

    @Override
    public DeviceCopier openCopier(int device) {
        return new CudaCopier(driver(), device);
    }

    /** With device {@code device}'s primary context pushed on the calling thread, popped afterwards. */
    @Override
    public <T> T inDeviceContext(int device, Supplier<T> work) {
        try (ContextScope ignored = driver().enter(device)) {
            return work.get();
        }
    }

    @Override
    public void forget(long address, long length) {
        if (isAvailable()) {
            driver().ranges().forget(address, length);
        }
    }

    /** The allocation holding the region, exported with {@code cuIpcGetMemHandle}; null without CUDA. */
    @Override
    public DeviceIpcHandle exportIpc(long address, long length) {
        return isAvailable() ? CudaIpcMemory.export(driver(), address, length) : null;
    }

    /** A peer's buffer mapped with {@code cuIpcOpenMemHandle} on the device of its PCI bus id. */
    @Override
    public DeviceIpcMapping openIpc(DeviceIpcHandle handle, long length) {
        return CudaIpcMemory.open(driver(), handle, length);
    }

    /** {@code cuMemHostAlloc} (portable), freed by {@code cuMemFreeHost} on close. */
    @Override
    public DeviceAllocation allocatePinned(long bytes) {
        return driver().allocatePinned(bytes);
    }

    /** {@code cuMemcpyDtoHAsync} / {@code cuMemcpyHtoDAsync} on the stager's own stream per device, each copy with an event. */
    @Override
    public DeviceStager openStager() {
        return new CudaStager(driver());
    }

    private static CudaDriver driver() {
        Throwable cause = CudaAvailability.cause();
        if (cause != null) {
            throw new MooncakeException(ErrorCode.TRANSPORT_UNAVAILABLE, "CUDA is unavailable: " + cause.getMessage(), cause);
        }
        return CudaDriver.instance();
    }
}
