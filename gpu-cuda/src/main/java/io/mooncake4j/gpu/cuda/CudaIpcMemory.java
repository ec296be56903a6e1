package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetPCIBusId;
import static jcuda.driver.JCudaDriver.cuIpcCloseMemHandle;
import static jcuda.driver.JCudaDriver.cuIpcGetMemHandle;
import static jcuda.driver.JCudaDriver.cuIpcOpenMemHandle;
import static jcuda.driver.JCudaDriver.cuMemGetAddressRange;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.DeviceIpcHandle;
import io.mooncake4j.spi.DeviceIpcMapping;
import java.lang.reflect.Field;
import java.util.Arrays;
import java.util.Locale;
import jcuda.driver.CUdevice;
import jcuda.driver.CUipcMemHandle;
import jcuda.driver.CUipcMem_flags;

/**
 * CUDA IPC through the driver API: {@code cuIpcGetMemHandle} of the allocation holding a region
 * (its base and the region's offset from {@code cuMemGetAddressRange}), and {@code
 * cuIpcOpenMemHandle} with {@code CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS} on the device whose PCI bus id
 * the handle names, in that device's primary context, pushed for the call only. Devices are named by
 * PCI bus id because ordinals differ between processes ({@code CUDA_VISIBLE_DEVICES}).
 */
final class CudaIpcMemory {
    // JCuda 12.6 keeps the handle's 64 bytes in a private field that its JNI code reads and writes
    private static final Field HANDLE_BYTES = handleField();

    private CudaIpcMemory() {}

    /** Exports the allocation holding {@code [address, address + length)}. */
    static DeviceIpcHandle export(CudaDriver driver, long address, long length) {
        int device = driver.locate(address).index();
        try (ContextScope ignored = driver.enter(device)) {
            Pointers.DevicePointer base = new Pointers.DevicePointer();
            long[] size = new long[1];
            CudaDriver.check(cuMemGetAddressRange(base, size, Pointers.device(address)), "cuMemGetAddressRange");
            long offset = address - base.address();
            if (offset + length > size[0]) {
                throw new MooncakeException(ErrorCode.REGISTRATION, "0x" + Long.toHexString(address) + " +" + length
                        + " spans more than one CUDA allocation; register each allocation's part on its own");
            }
            CUipcMemHandle handle = new CUipcMemHandle();
            CudaDriver.check(cuIpcGetMemHandle(handle, Pointers.device(base.address())), "cuIpcGetMemHandle");
            return new DeviceIpcHandle(bytes(handle), offset, pciBusId(device));
        }
    }

    /** Maps a peer's exported buffer of {@code length} bytes. */
    static DeviceIpcMapping open(CudaDriver driver, DeviceIpcHandle h, long length) {
        int device = deviceOf(driver, h.device());
        CUipcMemHandle handle = new CUipcMemHandle();
        setBytes(handle, h.handle());
        try (ContextScope ignored = driver.enter(device)) {
            Pointers.DevicePointer base = new Pointers.DevicePointer();
            CudaDriver.check(cuIpcOpenMemHandle(base, handle, CUipcMem_flags.CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS),
                    "cuIpcOpenMemHandle on cuda:" + device + " (" + h.device() + ")");
            long[] size = new long[1];
            int range = cuMemGetAddressRange(new Pointers.DevicePointer(), size, Pointers.device(base.address()));
            if (range != 0 || h.offset() + length > size[0]) {
                cuIpcCloseMemHandle(Pointers.device(base.address()));
                throw new MooncakeException(ErrorCode.IO, range != 0
                        ? "cuMemGetAddressRange of the mapped handle failed: " + CudaDriver.errorName(range)
                        : "the published buffer (offset " + h.offset() + ", " + length + " bytes) is not inside the"
                                + " exported allocation of " + size[0] + " bytes");
            }
            driver.ranges().add(base.address(), size[0], device);
            return CudaAllocation.mapped(driver, device, base.address(), size[0], h.offset(), length);
        }
    }

    /** The local ordinal of the device with this PCI bus id. */
    private static int deviceOf(CudaDriver driver, String busId) {
        String wanted = busId.toLowerCase(Locale.ROOT);
        String[] here = new String[driver.deviceCount()];
        for (int i = 0; i < here.length; i++) {
            here[i] = pciBusId(i);
            if (here[i].equals(wanted)) {
                return i;
            }
        }
        throw new MooncakeException(ErrorCode.IO, "no device with PCI bus id " + busId + " is visible to this process"
                + " (visible: " + Arrays.toString(here) + "; check CUDA_VISIBLE_DEVICES and the container's devices)");
    }

    private static String pciBusId(int device) {
        CUdevice dev = new CUdevice();
        CudaDriver.check(cuDeviceGet(dev, device), "cuDeviceGet");
        String[] id = new String[1];
        CudaDriver.check(cuDeviceGetPCIBusId(id, 64, dev), "cuDeviceGetPCIBusId");
        return id[0].toLowerCase(Locale.ROOT);
    }

    private static Field handleField() {
        try {
            Field f = CUipcMemHandle.class.getDeclaredField("reserved");
            f.setAccessible(true);
            return f;
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("this JCuda's CUipcMemHandle has no 'reserved' bytes (JCuda 12.6 has)", e);
        }
    }

    static byte[] bytes(CUipcMemHandle handle) {
        try {
            return ((byte[]) HANDLE_BYTES.get(handle)).clone();
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    static void setBytes(CUipcMemHandle handle, byte[] bytes) {
        try {
            HANDLE_BYTES.set(handle, bytes.clone());
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }
}
