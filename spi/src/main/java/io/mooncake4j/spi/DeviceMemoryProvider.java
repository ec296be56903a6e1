package io.mooncake4j.spi;

import io.mooncake4j.MemoryLocation;
import java.util.function.Supplier;

/**
 * Device memory (GPU memory) for the engine: found at runtime with {@link java.util.ServiceLoader}
 * through {@link DeviceMemoryProviders}, so that a deployment without a GPU library on its class
 * path still runs on host memory and is told what to add when it asks for a device location.
 *
 * <p>Checklist for an implementation:
 *
 * <ul>
 *   <li>a public no-argument constructor that does no heavy work and loads no native library;
 *   <li>a {@code META-INF/services/io.mooncake4j.spi.DeviceMemoryProvider} file naming the class;
 *   <li>{@link #isAvailable()} and {@link #unavailabilityCause()} never throw; availability is
 *       computed once (library on the class path, driver loaded, at least one device) and the cause
 *       kept, with a message that says what to add or install;
 *   <li>no call changes the calling thread's current device or context, and none leaves a context
 *       current on a thread that had none;
 *   <li>every other method may throw {@link io.mooncake4j.MooncakeException}.
 * </ul>
 */
public abstract class DeviceMemoryProvider {
    /** The {@link MemoryLocation#kind() location kind} this provider serves, e.g. {@code cuda}. */
    public abstract String kind();

    /** Whether device memory can be used here. Never throws. */
    public abstract boolean isAvailable();

    /** Why {@link #isAvailable()} is false, or null when it is available. Never throws. */
    public Throwable unavailabilityCause() {
        return null;
    }

    /** The number of devices (0 when unavailable). */
    public abstract int deviceCount();

    /**
     * Where {@code address} lives: {@code kind():N} for memory of device N, {@code cpu:0} for any
     * host memory (pageable or pinned). Never {@code *}. The engine calls this to resolve a region
     * registered with location {@code *} and to check one registered as {@code kind():N}.
     */
    public abstract MemoryLocation locate(long address);

    /**
     * Allocates {@code bytes} of device memory on {@code location} ({@code kind():N}); the caller
     * frees it with {@link DeviceAllocation#close()}.
     */
    public abstract DeviceAllocation allocate(MemoryLocation location, long bytes);

    /**
     * Opens a copier for same-process copies, with its own stream on device {@code device}. The
     * engine opens one and closes it when it closes.
     */
    public abstract DeviceCopier openCopier(int device);

    /**
     * Runs {@code work} on the calling thread with device {@code device}'s context current (CUDA: its
     * primary context), then makes current again whatever was before (another context, or none). For
     * native libraries that act on the device current on the calling thread, e.g. libfabric's {@code
     * fi_mr_regattr} with {@code FI_HMEM_CUDA}. The default runs {@code work} as it is, for devices
     * with no per-thread context.
     *
     * @throws io.mooncake4j.MooncakeException when the context cannot be made current
     */
    public <T> T inDeviceContext(int device, Supplier<T> work) {
        return work.get();
    }

    /**
     * Drops whatever the provider cached about {@code [address, address + length)}: the engine calls
     * this when it unregisters a region, whose memory may then be freed and its addresses reused.
     */
    public abstract void forget(long address, long length);

    @Override
    public String toString() {
        return getClass().getName() + "[" + kind() + "]";
    }
}
