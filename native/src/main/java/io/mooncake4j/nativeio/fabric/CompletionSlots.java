package io.mooncake4j.nativeio.fabric;

import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** A preallocated array of completed context slots, filled by {@link FabricNic#reap}. */
public final class CompletionSlots {
    private final ByteBuffer buffer;
    private final long address;
    private final int capacity;

    /** Room for {@code capacity} completions per reap. */
    public CompletionSlots(int capacity) {
        this.capacity = capacity;
        this.buffer = ByteBuffer.allocateDirect(capacity * 4).order(ByteOrder.nativeOrder());
        this.address = NativeMemory.address(buffer);
    }

    /** Completions one reap can return. */
    public int capacity() {
        return capacity;
    }

    long address() {
        return address;
    }

    /** The slot of completion {@code i} of the last reap. */
    public int slot(int i) {
        return buffer.getInt(i * 4);
    }
}
