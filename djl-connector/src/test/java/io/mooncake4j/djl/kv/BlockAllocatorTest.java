package io.mooncake4j.djl.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class BlockAllocatorTest {

    @Test
    void shouldPreferOneContiguousRun() {
        BlockAllocator a = new BlockAllocator(16);
        int[] x = a.allocate(3);
        int[] y = a.allocate(4);
        assertArrayEquals(new int[] {0, 1, 2}, x);
        assertArrayEquals(new int[] {3, 4, 5, 6}, y);
        a.release(x);
        // a hole of 3 at the front, 9 free at the back: 5 fits only at the back
        assertArrayEquals(new int[] {7, 8, 9, 10, 11}, a.allocate(5));
        // first fit: 2 goes into the front hole
        assertArrayEquals(new int[] {0, 1}, a.allocate(2));
    }

    @Test
    void shouldTakeScatteredBlocksWhenNoRunFits() {
        BlockAllocator a = new BlockAllocator(6);
        int[] all = a.allocate(6);
        a.release(new int[] {all[1], all[3], all[5]});
        assertArrayEquals(new int[] {1, 3, 5}, a.allocate(3));
        assertEquals(0, a.freeBlocks());
    }

    @Test
    void shouldRefuseWhenExhausted() {
        BlockAllocator a = new BlockAllocator(4);
        a.allocate(3);
        assertNull(a.tryAllocate(2));
        KvException e = assertThrows(KvException.class, () -> a.allocate(2));
        assertEquals(KvError.POOL_EXHAUSTED, e.error());
        assertEquals(2, a.failedAllocations());
    }

    @Test
    void shouldNeverHandOutAPinnedBlockUntilTheLastReferenceGoes() {
        BlockAllocator a = new BlockAllocator(8);
        int[] req = a.allocate(4);
        a.retain(req); // a transfer in flight pins them
        a.release(req); // the request ends first
        assertEquals(1, a.refCount(req[0]));
        int[] others = a.allocate(4);
        Set<Integer> pinned = new HashSet<>();
        Arrays.stream(req).forEach(pinned::add);
        for (int b : others) {
            assertFalse(pinned.contains(b), "pinned block " + b + " handed out again");
        }
        assertNull(a.tryAllocate(1));
        a.release(req); // the transfer ends
        assertEquals(4, a.freeBlocks());
        assertArrayEquals(req, a.allocate(4));
    }

    @Test
    void shouldRejectOverReleaseAndRetainOfFreeBlocks() {
        BlockAllocator a = new BlockAllocator(2);
        int[] b = a.allocate(1);
        a.release(b);
        assertThrows(IllegalStateException.class, () -> a.release(b));
        assertThrows(IllegalStateException.class, () -> a.retain(b));
        assertThrows(KvException.class, () -> a.release(new int[] {5}));
    }
}
