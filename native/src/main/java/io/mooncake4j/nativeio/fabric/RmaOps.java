package io.mooncake4j.nativeio.fabric;

import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A preallocated array of RMA operations in native memory, filled in Java and posted in one JNI call
 * by {@link FabricNic#post}. Layout per operation (64 bytes, native order): u32 slot, u32 flags, u64
 * local address, u64 length, u64 local descriptor, u64 remote address, u64 remote key, u64
 * destination {@code fi_addr_t}, i64 result.
 */
public final class RmaOps {
    /** Flag: {@code fi_read} instead of {@code fi_write}. */
    public static final int READ = 1;
    /** Flag: ask for delivery completion ({@code FI_DELIVERY_COMPLETE}) on a write. */
    public static final int DELIVERY_COMPLETE = 2;

    private static final int SIZE = 64;
    private final ByteBuffer buffer;
    private final long address;
    private final int capacity;

    /** Room for {@code capacity} operations. */
    public RmaOps(int capacity) {
        this.capacity = capacity;
        this.buffer = ByteBuffer.allocateDirect(capacity * SIZE).order(ByteOrder.nativeOrder());
        this.address = NativeMemory.address(buffer);
    }

    /** Operations it can hold. */
    public int capacity() {
        return capacity;
    }

    long address(int i) {
        return address + (long) i * SIZE;
    }

    /** Writes operation {@code i}. */
    public void set(
            int i, int slot, int flags, long local, long length, long descriptor, long remote,
            long rkey, long dest) {
        int o = i * SIZE;
        buffer.putInt(o, slot);
        buffer.putInt(o + 4, flags);
        buffer.putLong(o + 8, local);
        buffer.putLong(o + 16, length);
        buffer.putLong(o + 24, descriptor);
        buffer.putLong(o + 32, remote);
        buffer.putLong(o + 40, rkey);
        buffer.putLong(o + 48, dest);
        buffer.putLong(o + 56, 0);
    }

    /** Adds {@code flags} to operation {@code i} (before it is posted). */
    public void addFlags(int i, int flags) {
        buffer.putInt(i * SIZE + 4, buffer.getInt(i * SIZE + 4) | flags);
    }

    /** Copies operation {@code from} over operation {@code to} (to compact a staged range). */
    public void move(int from, int to) {
        if (from != to) {
            for (int b = 0; b < SIZE; b += 8) {
                buffer.putLong(to * SIZE + b, buffer.getLong(from * SIZE + b));
            }
        }
    }

    /** The slot of operation {@code i}. */
    public int slot(int i) {
        return buffer.getInt(i * SIZE);
    }

    /** The result libfabric gave operation {@code i} (0, or a negative error) after a post. */
    public long rc(int i) {
        return buffer.getLong(i * SIZE + 56);
    }
}
