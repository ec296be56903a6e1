package io.mooncake4j;

/**
 * A registered range of local memory.
 *
 * @param address the first byte's native address
 * @param length the length in bytes (positive)
 * @param location where the memory lives
 */
public record MemoryRegion(long address, long length, MemoryLocation location) {
    public MemoryRegion {
        if (length <= 0) {
            throw new MooncakeException(
                    ErrorCode.REGISTRATION, "a memory region must not be empty (length " + length + ")");
        }
        if (address == 0) {
            throw new MooncakeException(ErrorCode.REGISTRATION, "a memory region needs a non-null address");
        }
        if (Long.compareUnsigned(address + length, address) <= 0) {
            throw new MooncakeException(
                    ErrorCode.REGISTRATION,
                    "memory region at 0x" + Long.toHexString(address) + " of " + length + " bytes wraps around");
        }
    }

    /** The address one past the last byte. */
    public long end() {
        return address + length;
    }

    /** Whether {@code [addr, addr + len)} lies wholly inside this region (len > 0, no overflow). */
    public boolean contains(long addr, long len) {
        return len > 0
                && Long.compareUnsigned(addr, address) >= 0
                && Long.compareUnsigned(addr + len, addr) > 0
                && Long.compareUnsigned(addr + len, end()) <= 0;
    }

    @Override
    public String toString() {
        return "MemoryRegion[0x" + Long.toHexString(address) + ", " + length + " bytes, " + location + "]";
    }
}
