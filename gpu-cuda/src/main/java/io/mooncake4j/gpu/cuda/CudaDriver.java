package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuGetErrorName;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.CU_MEMHOSTALLOC_PORTABLE;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemHostAlloc;
import static jcuda.driver.JCudaDriver.cuPointerGetAttribute;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUmemorytype;
import jcuda.driver.CUpointer_attribute;
import jcuda.driver.CUresult;

/**
 * The process's one view of the CUDA driver: device count, each device's primary context (retained
 * on first use and kept for the life of the process, as the runtime API does), pointer locations
 * and allocation. Uses the driver API only, which never binds a context to a thread implicitly.
 */
final class CudaDriver {
    /** The device number the copier gives host memory, pageable or pinned. */
    static final int HOST = -1;

    private static CudaDriver instance;

    private final int deviceCount;
    private final CUcontext[] primary;
    private final DeviceRanges ranges = new DeviceRanges();

    private CudaDriver() {
        check(cuInit(0), "cuInit");
        int[] count = new int[1];
        check(cuDeviceGetCount(count), "cuDeviceGetCount");
        deviceCount = count[0];
        primary = new CUcontext[deviceCount];
    }

    /** The driver, started on first call; a failure (no libcuda, no driver) is thrown each time. */
    static synchronized CudaDriver instance() {
        if (instance == null) {
            instance = new CudaDriver();
        }
        return instance;
    }

    int deviceCount() {
        return deviceCount;
    }

    DeviceRanges ranges() {
        return ranges;
    }

    /** Makes device {@code device}'s primary context current until the scope closes. */
    ContextScope enter(int device) {
        return ContextScope.push(primaryContext(device));
    }

    synchronized CUcontext primaryContext(int device) {
        if (device < 0 || device >= deviceCount) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "cuda:" + device + " does not exist: this host has " + deviceCount + " CUDA device(s)");
        }
        if (primary[device] == null) {
            CUdevice dev = new CUdevice();
            check(cuDeviceGet(dev, device), "cuDeviceGet");
            CUcontext ctx = new CUcontext();
            check(cuDevicePrimaryCtxRetain(ctx, dev), "cuDevicePrimaryCtxRetain");
            primary[device] = ctx;
        }
        return primary[device];
    }

    MemoryLocation locate(long address) {
        try (ContextScope ignored = enter(0)) {
            DeviceRanges.Range range = rangeOf(address);
            return range == null ? MemoryLocation.CPU : MemoryLocation.cuda(range.device());
        }
    }

    /** The device allocation holding {@code address}, or null for host memory. Call with a context current. */
    DeviceRanges.Range rangeOf(long address) {
        DeviceRanges.Range cached = ranges.find(address);
        if (cached != null) {
            return cached;
        }
        int[] type = new int[1];
        int result = cuPointerGetAttribute(Pointer.to(type), CUpointer_attribute.CU_POINTER_ATTRIBUTE_MEMORY_TYPE, Pointers.device(address));
        if (result == CUresult.CUDA_ERROR_INVALID_VALUE || (result == CUresult.CUDA_SUCCESS && type[0] == CUmemorytype.CU_MEMORYTYPE_HOST)) {
            return null; // unknown to CUDA (pageable) or page-locked host memory: neither is cached
        }
        check(result, "cuPointerGetAttribute(MEMORY_TYPE)");
        int[] ordinal = new int[1];
        long[] start = new long[1];
        long[] size = new long[1];
        check(cuPointerGetAttribute(Pointer.to(ordinal), CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, Pointers.device(address)),
                "cuPointerGetAttribute(DEVICE_ORDINAL)");
        check(cuPointerGetAttribute(Pointer.to(start), CUpointer_attribute.CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, Pointers.device(address)),
                "cuPointerGetAttribute(RANGE_START_ADDR)");
        check(cuPointerGetAttribute(Pointer.to(size), CUpointer_attribute.CU_POINTER_ATTRIBUTE_RANGE_SIZE, Pointers.device(address)),
                "cuPointerGetAttribute(RANGE_SIZE)");
        ranges.add(start[0], size[0], ordinal[0]);
        return ranges.find(address);
    }

    CudaAllocation allocate(int device, long bytes) {
        if (bytes <= 0) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "cannot allocate " + bytes + " bytes: pass a positive size");
        }
        try (ContextScope ignored = enter(device)) {
            Pointers.DevicePointer ptr = new Pointers.DevicePointer();
            check(cuMemAlloc(ptr, bytes), "cuMemAlloc(" + bytes + " bytes on cuda:" + device + ")");
            ranges.add(ptr.address(), bytes, device);
            return CudaAllocation.allocated(this, device, ptr.address(), bytes);
        }
    }

    /** Page-locked host memory, portable to every context, for staging (allocated under cuda:0's primary context). */
    CudaAllocation allocatePinned(long bytes) {
        if (bytes <= 0) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "cannot allocate " + bytes + " pinned bytes: pass a positive size");
        }
        try (ContextScope ignored = enter(0)) {
            Pointers.AllocatedHostPointer ptr = new Pointers.AllocatedHostPointer();
            check(cuMemHostAlloc(ptr, bytes, CU_MEMHOSTALLOC_PORTABLE), "cuMemHostAlloc(" + bytes + " bytes)");
            return CudaAllocation.pinned(this, ptr.address(), bytes);
        }
    }

    /** Turns a driver result into an exception carrying the driver's error name. */
    static void check(int result, String call) {
        if (result != CUresult.CUDA_SUCCESS) {
            throw new MooncakeException(ErrorCode.IO, call + " failed: " + errorName(result));
        }
    }

    static String errorName(int result) {
        String[] name = new String[1];
        return cuGetErrorName(result, name) == CUresult.CUDA_SUCCESS && name[0] != null ? name[0] + " (" + result + ")" : CUresult.stringFor(result);
    }
}
