package io.mooncake4j.djl.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class KvPrefixCacheTest {
    private final BlockAllocator allocator = new BlockAllocator(16);
    private final KvPrefixCache cache = new KvPrefixCache(allocator, 2, 4);

    @Test
    void shouldMatchTheLongestChainOfWholeBlocks() {
        int[] prompt = {1, 2, 3, 4, 5, 6, 7};
        int[] table = allocator.allocate(4);
        cache.insert(prompt, 7, table); // 3 whole blocks
        assertEquals(3, cache.size());
        allocator.release(table); // the request ends: the cache keeps 3 blocks
        assertEquals(3, allocator.usedBlocks());

        int[] hit = cache.match(new int[] {1, 2, 3, 4, 9, 9, 9}, 7);
        assertArrayEquals(new int[] {table[0], table[1]}, hit);
        assertEquals(2, allocator.refCount(table[0]), "retained for the caller");
        allocator.release(hit);
        // a different first block shares nothing, even with equal later blocks
        assertEquals(0, cache.match(new int[] {0, 0, 3, 4, 5, 6}, 6).length);
        // never more than maxTokens' whole blocks
        assertArrayEquals(new int[] {table[0]}, release(cache.match(prompt, 3)));
    }

    private int[] release(int[] ids) {
        allocator.release(ids);
        return ids;
    }

    @Test
    void shouldEvictOnlyUnreferencedLeastRecentlyUsedLeaves() {
        int[] a = allocator.allocate(2);
        cache.insert(new int[] {1, 1, 2, 2}, 4, a);
        allocator.release(a);
        int[] b = allocator.allocate(2);
        cache.insert(new int[] {3, 3, 4, 4}, 4, b);
        // b's request is still running: its blocks are referenced twice
        assertEquals(4, cache.size());
        int[] c = allocator.allocate(1);
        cache.insert(new int[] {5, 5}, 2, c); // over capacity: evicts a's leaf, the only unreferenced leaf
        assertEquals(4, cache.size());
        assertEquals(0, allocator.refCount(a[1]));
        assertEquals(1, allocator.refCount(a[0]));
        assertEquals(1, cache.evict(5), "only a's first block is unreferenced now");
        assertEquals(0, allocator.refCount(a[0]));
        allocator.release(b);
        allocator.release(c);
        assertEquals(3, cache.evict(5));
        assertEquals(0, cache.size());
        assertEquals(0, allocator.usedBlocks());
    }
}
