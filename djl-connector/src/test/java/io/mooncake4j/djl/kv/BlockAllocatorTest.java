package io.mooncake4j.djl.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class BlockAllocatorTest {
    /** Not the common pool: it may have a single thread, which a waiting caller would hold. */
    private static final Executor THREADS = command -> {
        Thread t = new Thread(command, "allocator-test");
        t.setDaemon(true);
        t.start();
    };

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

    // ------------------------------------------------------------------ waiting

    @Test
    @Timeout(10)
    void shouldWaitForBlocksAndTakeThemWhenFreed() throws Exception {
        BlockAllocator a = new BlockAllocator(8);
        int[] first = a.allocate(8);
        CompletableFuture<int[]> second = CompletableFuture.supplyAsync(
                () -> a.allocate(8, Duration.ofSeconds(10), null), THREADS);
        await(() -> a.waitingAllocations() == 1, "the second caller waits");
        assertFalse(second.isDone());
        a.release(first);
        assertEquals(8, second.get(5, TimeUnit.SECONDS).length);
        assertEquals(0, a.freeBlocks());
        assertEquals(0, a.waitingAllocations());
    }

    @Test
    @Timeout(10)
    void shouldGiveUpWithPoolExhaustedWhenNothingIsFreedInTime() {
        BlockAllocator a = new BlockAllocator(8);
        a.allocate(8);
        long t0 = System.nanoTime();
        KvException e = assertThrows(KvException.class, () -> a.allocate(1, Duration.ofMillis(200), null));
        long waited = System.nanoTime() - t0;
        assertEquals(KvError.POOL_EXHAUSTED, e.error());
        assertTrue(waited >= TimeUnit.MILLISECONDS.toNanos(200), "waited " + waited + " ns");
        assertTrue(e.getMessage().contains("after waiting 200 ms"), e.getMessage());
        assertEquals(0, a.waitingAllocations());
        // more than the pool holds fails at once, whatever the wait
        t0 = System.nanoTime();
        assertEquals(KvError.POOL_EXHAUSTED,
                assertThrows(KvException.class, () -> a.allocate(9, Duration.ofSeconds(10), null)).error());
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5));
    }

    @Test
    @Timeout(10)
    void shouldServeWaitersFirstComeFirstServed() throws Exception {
        BlockAllocator a = new BlockAllocator(8);
        int[] six = a.allocate(6);
        int[] two = a.allocate(2);
        CompletableFuture<int[]> big = CompletableFuture.supplyAsync(
                () -> a.allocate(7, Duration.ofSeconds(10), null), THREADS);
        await(() -> a.waitingAllocations() == 1, "the big request waits");
        CompletableFuture<int[]> small = CompletableFuture.supplyAsync(
                () -> a.allocate(2, Duration.ofSeconds(10), null), THREADS);
        await(() -> a.waitingAllocations() == 2, "the small request queues behind it");
        a.release(two);
        // two blocks would fit the small request, but the big one came first
        Thread.sleep(100);
        assertFalse(small.isDone(), "a later, smaller request overtook a waiting one");
        a.release(six);
        assertEquals(7, big.get(5, TimeUnit.SECONDS).length);
        a.release(big.get());
        assertEquals(2, small.get(5, TimeUnit.SECONDS).length);
    }

    @Test
    @Timeout(10)
    void shouldStopWaitingWhenCancelledOrInterrupted() throws Exception {
        BlockAllocator a = new BlockAllocator(4);
        a.allocate(4);
        AtomicBoolean closed = new AtomicBoolean();
        CompletableFuture<int[]> w = CompletableFuture.supplyAsync(
                () -> a.allocate(1, Duration.ofSeconds(30), closed::get), THREADS);
        await(() -> a.waitingAllocations() == 1, "waiting");
        closed.set(true);
        a.wakeWaiters();
        Throwable t = assertThrows(Exception.class, () -> w.get(5, TimeUnit.SECONDS)).getCause();
        assertEquals(KvError.CLOSED, ((KvException) t).error());

        KvException[] seen = new KvException[1];
        boolean[] flag = new boolean[1];
        Thread th = new Thread(() -> {
            try {
                a.allocate(1, Duration.ofSeconds(30), null);
            } catch (KvException e) {
                seen[0] = e;
                flag[0] = Thread.currentThread().isInterrupted();
            }
        });
        th.start();
        await(() -> a.waitingAllocations() == 1, "waiting");
        th.interrupt();
        th.join(5000);
        assertEquals(KvError.ABORTED, seen[0].error());
        assertTrue(flag[0], "the interrupt flag is set again");
        assertEquals(0, a.waitingAllocations());
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("not within 5 s: " + what);
            }
            Thread.sleep(5);
        }
    }
}
