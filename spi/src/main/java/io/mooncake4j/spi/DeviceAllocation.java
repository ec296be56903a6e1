package io.mooncake4j.spi;

import io.mooncake4j.MemoryLocation;

/** Device memory allocated by {@link DeviceMemoryProvider#allocate}; {@link #close()} frees it. */
public interface DeviceAllocation extends AutoCloseable {
    /** The first byte's device address (a unified virtual address). */
    long address();

    /** The length in bytes. */
    long length();

    /** Where it lives ({@code cuda:N}). */
    MemoryLocation location();

    /** Frees the memory. Idempotent; the caller makes sure no copy still uses it. */
    @Override
    void close();
}
