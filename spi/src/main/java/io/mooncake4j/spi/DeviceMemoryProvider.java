package io.mooncake4j.spi;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
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

    // ---------------------------------------------------------------- same-host IPC (CUDA IPC)

    /**
     * Exports the registered device region {@code [address, address + length)} so that another
     * process on this host can map it ({@link #openIpc}); the engine calls this once when the region
     * is registered and publishes the result with the buffer.
     *
     * @return the handle, or null when this provider cannot export at all (the default)
     * @throws io.mooncake4j.MooncakeException saying why when this region cannot be exported (e.g.
     *     memory from an allocator that does not support IPC); the engine then publishes no handle
     */
    public DeviceIpcHandle exportIpc(long address, long length) {
        return null;
    }

    /**
     * Maps a buffer of {@code length} bytes that another process on this host exported, on the local
     * device the handle names, with that device's context current only for the call (the caller's
     * is restored) and peer access enabled lazily. The engine opens each peer buffer once and closes
     * the mapping when the peer's descriptor no longer shows the buffer, or when it closes.
     *
     * @throws io.mooncake4j.MooncakeException saying why when it cannot be mapped (no such device
     *     here, another IPC namespace, no peer access, the buffer not inside the allocation, or no
     *     IPC support in this provider: the default); the engine then uses the network transport
     */
    public DeviceIpcMapping openIpc(DeviceIpcHandle handle, long length) {
        throw new io.mooncake4j.MooncakeException(io.mooncake4j.ErrorCode.TRANSPORT_UNAVAILABLE,
                getClass().getName() + " does not open IPC handles");
    }

    @Override
    public String toString() {
        return getClass().getName() + "[" + kind() + "]";
    }

    // ---- staging for transports that move device memory through host memory (GPU-aware TCP)

    /**
     * Allocates {@code bytes} of page-locked (pinned) host memory, usable for asynchronous copies to
     * and from every device of this provider; {@link DeviceAllocation#location()} is {@code cpu:0}
     * and {@link DeviceAllocation#close()} frees it. A transport stages device memory through such
     * buffers and pools them.
     *
     * @throws io.mooncake4j.MooncakeException ({@code TRANSPORT_UNAVAILABLE}) when this provider does
     *     not stage device memory for transports; {@code IO} when the allocation fails
     */
    public DeviceAllocation allocatePinned(long bytes) {
        throw new MooncakeException(ErrorCode.TRANSPORT_UNAVAILABLE,
                this + " does not stage device memory for transports (no pinned host memory): " + DeviceMemoryProviders.CUDA_HINT);
    }

    /**
     * Opens a {@link DeviceStager}: asynchronous copies between any device of this provider and
     * pinned host memory, on the stager's own streams. Its user closes it.
     *
     * @throws io.mooncake4j.MooncakeException ({@code TRANSPORT_UNAVAILABLE}) when this provider does
     *     not stage device memory for transports
     */
    public DeviceStager openStager() {
        throw new MooncakeException(ErrorCode.TRANSPORT_UNAVAILABLE,
                this + " does not stage device memory for transports: " + DeviceMemoryProviders.CUDA_HINT);
    }
}
