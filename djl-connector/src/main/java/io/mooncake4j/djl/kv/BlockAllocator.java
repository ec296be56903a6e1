package io.mooncake4j.djl.kv;

import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.util.Arrays;
import java.util.BitSet;

/**
 * Hands out block ids of a pool and counts references to each: the request that owns a block holds
 * one, every transfer in flight into or out of it holds one more (a pin), a prefix cache may hold
 * one. A block returns to the free list only when its count drops to zero, so it is never handed
 * out again while a transfer still touches it.
 *
 * <p>Allocation prefers one run of consecutive ids (first fit) so that transfers coalesce; when the
 * free list is fragmented it takes the lowest free ids. Thread safe.
 */
public final class BlockAllocator {
    private final int numBlocks;
    private final int[] refs;
    private final BitSet free;
    private int freeCount;
    private long allocations;
    private long failedAllocations;

    /** An allocator of ids {@code [0, numBlocks)}, all free. */
    public BlockAllocator(int numBlocks) {
        if (numBlocks <= 0) {
            throw new KvException(KvError.INVALID_PARAMS, "numBlocks must be positive, got " + numBlocks);
        }
        this.numBlocks = numBlocks;
        this.refs = new int[numBlocks];
        this.free = new BitSet(numBlocks);
        this.free.set(0, numBlocks);
        this.freeCount = numBlocks;
    }

    /**
     * Allocates {@code n} blocks, each with one reference held by the caller.
     *
     * @param n the number of blocks, 0 or more
     * @return the ids, consecutive when a long enough free run exists
     * @throws KvException POOL_EXHAUSTED when fewer than {@code n} blocks are free
     */
    public int[] allocate(int n) {
        int[] ids = tryAllocate(n);
        if (ids == null) {
            throw new KvException(
                    KvError.POOL_EXHAUSTED,
                    "need " + n + " KV blocks but only " + freeBlocks() + " of " + numBlocks
                            + " are free: raise MC_KV_NUM_BLOCKS, lower concurrency, or wait for requests to end");
        }
        return ids;
    }

    /**
     * Like {@link #allocate} but returns null when not enough blocks are free.
     *
     * @param n the number of blocks
     * @return the ids, or null
     */
    public synchronized int[] tryAllocate(int n) {
        if (n < 0) {
            throw new KvException(KvError.INVALID_PARAMS, "block count must not be negative: " + n);
        }
        if (n > freeCount) {
            failedAllocations++;
            return null;
        }
        int[] ids = new int[n];
        if (n == 0) {
            return ids;
        }
        int start = firstRun(n);
        if (start >= 0) {
            for (int i = 0; i < n; i++) {
                ids[i] = start + i;
            }
        } else {
            int b = -1;
            for (int i = 0; i < n; i++) {
                b = free.nextSetBit(b + 1);
                ids[i] = b;
            }
        }
        for (int id : ids) {
            free.clear(id);
            refs[id] = 1;
        }
        freeCount -= n;
        allocations++;
        return ids;
    }

    private int firstRun(int n) {
        int i = free.nextSetBit(0);
        while (i >= 0 && i + n <= numBlocks) {
            int end = free.nextClearBit(i);
            if (end - i >= n) {
                return i;
            }
            i = free.nextSetBit(end);
        }
        return -1;
    }

    /** Adds one reference to each of {@code ids} (which must be allocated). */
    public void retain(int[] ids) {
        retain(ids, 0, ids.length);
    }

    /** Adds one reference to each of {@code ids[from, from + count)}. */
    public synchronized void retain(int[] ids, int from, int count) {
        for (int i = from; i < from + count; i++) {
            int id = ids[i];
            check(id);
            if (refs[id] <= 0) {
                throw new IllegalStateException("block " + id + " is free: it cannot be retained");
            }
        }
        for (int i = from; i < from + count; i++) {
            refs[ids[i]]++;
        }
    }

    /** Drops one reference from each of {@code ids}; those reaching zero are free again. */
    public void release(int[] ids) {
        release(ids, 0, ids.length);
    }

    /** Drops one reference from each of {@code ids[from, from + count)}. */
    public synchronized void release(int[] ids, int from, int count) {
        for (int i = from; i < from + count; i++) {
            int id = ids[i];
            check(id);
            if (refs[id] <= 0) {
                throw new IllegalStateException("block " + id + " released more often than retained");
            }
        }
        for (int i = from; i < from + count; i++) {
            int id = ids[i];
            if (--refs[id] == 0) {
                free.set(id);
                freeCount++;
            }
        }
    }

    /** The number of references to a block; 0 when free. */
    public synchronized int refCount(int id) {
        check(id);
        return refs[id];
    }

    /** The number of free blocks. */
    public synchronized int freeBlocks() {
        return freeCount;
    }

    /** The number of blocks with at least one reference. */
    public synchronized int usedBlocks() {
        return numBlocks - freeCount;
    }

    /** The number of blocks. */
    public int numBlocks() {
        return numBlocks;
    }

    /** Successful allocations so far. */
    public synchronized long allocations() {
        return allocations;
    }

    /** Allocations refused for lack of blocks so far. */
    public synchronized long failedAllocations() {
        return failedAllocations;
    }

    private void check(int id) {
        if (id < 0 || id >= numBlocks) {
            throw new KvException(KvError.INVALID_PARAMS, "block id " + id + " outside [0, " + numBlocks + ")");
        }
    }

    @Override
    public synchronized String toString() {
        return "BlockAllocator[" + freeCount + "/" + numBlocks + " free, refs " + summary() + "]";
    }

    private String summary() {
        int[] hist = new int[4];
        for (int r : refs) {
            hist[Math.min(r, 3)]++;
        }
        return Arrays.toString(hist);
    }
}
