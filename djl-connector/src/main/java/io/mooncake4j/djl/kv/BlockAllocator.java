package io.mooncake4j.djl.kv;

import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.BitSet;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * Hands out block ids of a pool and counts references to each: the request that owns a block holds
 * one, every transfer in flight into or out of it holds one more (a pin), a prefix cache may hold
 * one. A block returns to the free list only when its count drops to zero, so it is never handed
 * out again while a transfer still touches it.
 *
 * <p>Allocation prefers one run of consecutive ids (first fit) so that transfers coalesce; when the
 * free list is fragmented it takes the lowest free ids. {@link #allocate(int, Duration,
 * BooleanSupplier)} waits (bounded) for blocks to be freed; waiters are served first come, first
 * served, so a large request is not starved by smaller ones that arrive after it. Thread safe.
 */
public final class BlockAllocator {
    private final int numBlocks;
    private final int[] refs;
    private final BitSet free;
    private int freeCount;
    private long allocations;
    private long failedAllocations;
    /** Threads waiting in {@link #allocate(int, Duration, BooleanSupplier)}, oldest first (guarded by this). */
    private final ArrayDeque<Object> waiters = new ArrayDeque<>();

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
            throw exhausted(n, null);
        }
        return ids;
    }

    /**
     * Allocates {@code n} blocks, waiting up to {@code wait} for other holders to free enough of
     * them. Waiting callers are served in arrival order: while one waits, later callers of this
     * method queue behind it even if their smaller request would fit ({@link #tryAllocate} and
     * {@link #allocate(int)} never wait and never queue).
     *
     * @param n the number of blocks, 0 or more
     * @param wait how long to wait at most; zero or negative: like {@link #allocate(int)}
     * @param cancelled checked whenever the caller wakes: true gives up with CLOSED (call {@link
     *     #wakeWaiters()} after making it true); may be null
     * @return the ids
     * @throws KvException POOL_EXHAUSTED when the wait ran out (or {@code n} exceeds the pool),
     *     CLOSED when cancelled, ABORTED when the thread was interrupted (its flag is set again)
     */
    public int[] allocate(int n, Duration wait, BooleanSupplier cancelled) {
        if (wait == null || wait.isZero() || wait.isNegative()) {
            return allocate(n);
        }
        if (n > numBlocks) {
            synchronized (this) {
                failedAllocations++;
            }
            throw exhausted(n, null);
        }
        long deadline = System.nanoTime() + wait.toNanos();
        synchronized (this) {
            if (waiters.isEmpty()) {
                int[] ids = tryAllocateFree(n);
                if (ids != null) {
                    return ids;
                }
            }
            Object me = new Object();
            waiters.addLast(me);
            try {
                while (true) {
                    if (cancelled != null && cancelled.getAsBoolean()) {
                        throw new KvException(KvError.CLOSED, "gave up waiting for " + n + " KV blocks: closed");
                    }
                    if (waiters.peekFirst() == me) {
                        int[] ids = tryAllocateFree(n);
                        if (ids != null) {
                            return ids;
                        }
                    }
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        failedAllocations++;
                        throw exhausted(n, wait);
                    }
                    TimeUnit.NANOSECONDS.timedWait(this, left);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new KvException(KvError.ABORTED, "interrupted while waiting for " + n + " KV blocks");
            } finally {
                waiters.remove(me);
                if (!waiters.isEmpty()) {
                    notifyAll(); // a new head may proceed
                }
            }
        }
    }

    /** Wakes every caller waiting for blocks, so that each checks whether it was cancelled. */
    public synchronized void wakeWaiters() {
        notifyAll();
    }

    /** The number of callers waiting for blocks now. */
    public synchronized int waitingAllocations() {
        return waiters.size();
    }

    private KvException exhausted(int n, Duration waited) {
        if (n > numBlocks) {
            return new KvException(KvError.POOL_EXHAUSTED, "need " + n + " KV blocks but the pool has only "
                    + numBlocks + ": raise MC_KV_NUM_BLOCKS (MC_KV_POOL_MB)");
        }
        return new KvException(
                KvError.POOL_EXHAUSTED,
                "need " + n + " KV blocks but only " + freeBlocks() + " of " + numBlocks + " are free"
                        + (waited == null ? "" : " after waiting " + waited.toMillis() + " ms")
                        + ": raise MC_KV_NUM_BLOCKS, lower concurrency, or wait for requests to end"
                        + (waited == null ? " (MC_KV_ALLOC_WAIT)" : ""));
    }

    /**
     * Like {@link #allocate} but returns null when not enough blocks are free.
     *
     * @param n the number of blocks
     * @return the ids, or null
     */
    public synchronized int[] tryAllocate(int n) {
        int[] ids = tryAllocateFree(n);
        if (ids == null) {
            failedAllocations++;
        }
        return ids;
    }

    /** Takes {@code n} free blocks, or returns null (counting nothing). Holds the lock. */
    private int[] tryAllocateFree(int n) {
        if (n < 0) {
            throw new KvException(KvError.INVALID_PARAMS, "block count must not be negative: " + n);
        }
        if (n > freeCount) {
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
        boolean freed = false;
        for (int i = from; i < from + count; i++) {
            int id = ids[i];
            if (--refs[id] == 0) {
                free.set(id);
                freeCount++;
                freed = true;
            }
        }
        if (freed && !waiters.isEmpty()) {
            notifyAll();
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
