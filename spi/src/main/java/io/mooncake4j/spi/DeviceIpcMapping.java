package io.mooncake4j.spi;

import io.mooncake4j.MemoryLocation;

/**
 * A peer's device buffer mapped into this process by {@link DeviceMemoryProvider#openIpc}: its
 * bytes are at {@link #address()} here, readable and writable by this process's {@link DeviceCopier}
 * of {@link #location()}.
 */
public interface DeviceIpcMapping extends AutoCloseable {
    /** Where the peer's buffer's first byte is in this process (the mapping's base plus the offset). */
    long address();

    /** The buffer's length in bytes, as opened. */
    long length();

    /** The local device it is mapped on ({@code cuda:N} in this process's numbering). */
    MemoryLocation location();

    /** Unmaps it (CUDA: {@code cuIpcCloseMemHandle}). Idempotent; the caller makes sure no copy uses it. */
    @Override
    void close();
}
