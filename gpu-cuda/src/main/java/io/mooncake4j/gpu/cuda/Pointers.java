package io.mooncake4j.gpu.cuda;

import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;

/** Raw addresses as JCuda pointers, without copying anything. */
final class Pointers {
    private Pointers() {}

    /** {@code address} as a device pointer (JCuda passes base + offset to the driver). */
    static CUdeviceptr device(long address) {
        return new CUdeviceptr().withByteOffset(address);
    }

    /** {@code address} as a host pointer. */
    static Pointer host(long address) {
        return new HostPointer(address);
    }

    private static final class HostPointer extends Pointer {
        HostPointer(long address) {
            super(address);
        }
    }

    /** A host pointer the driver fills in (cuMemHostAlloc), with its address readable. */
    static final class AllocatedHostPointer extends Pointer {
        long address() {
            return getNativePointer() + getByteOffset();
        }
    }

    /** A device pointer the driver fills in (cuMemAlloc), with its address readable. */
    static final class DevicePointer extends CUdeviceptr {
        long address() {
            return getNativePointer() + getByteOffset();
        }
    }
}
