package io.mooncake4j.transport.tcp;

import static io.mooncake4j.transport.tcp.TcpTestKit.allEqual;
import static io.mooncake4j.transport.tcp.TcpTestKit.config;
import static io.mooncake4j.transport.tcp.TcpTestKit.fill;
import static io.mooncake4j.transport.tcp.TcpTestKit.fillRandom;
import static io.mooncake4j.transport.tcp.TcpTestKit.mismatch;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeContext;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeSubmission;
import io.mooncake4j.transport.tcp.TcpTestKit.Mapped;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Small batches sent by the submitting thread itself (caller-runs send) while other threads abort
 * their batches and the transport closes under them: data intact, nothing written after an abort,
 * every submission ends, no part completed twice, no thread left.
 */
@Tag("integration")
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TcpCallerRunTest {
    private static final long MiB = 1 << 20;
    private static final long AREA = 16 * MiB; // per thread, on each side
    /**
     * Each checked batch uses the next window of its thread's area: a WRITE that failed when a
     * connection was closed under it (another thread's abort) may still land on the target a little
     * later, through the old connection's serving thread, and must not land on a batch being checked.
     */
    private static final long WINDOW = 64 << 10;

    /** A small batch: 1-8 requests of 1 byte to 8 KiB within {@code span} (at most 64 KiB, so a caller-run when idle). */
    private static FakeSubmission smallBatch(SplittableRandom rnd, Opcode op, long local, long remote, long span) {
        int n = 1 + rnd.nextInt(8);
        FakeSubmission s = new FakeSubmission(n);
        long slot = span / n;
        for (int i = 0; i < n; i++) {
            long len = 1 + rnd.nextInt((int) Math.min(8192, slot / 2));
            long off = i * slot + rnd.nextLong(slot - len);
            s.set(i, op, local + off, remote + off, len);
        }
        return s;
    }

    @Test
    void shouldKeepDataIntactAndStopOnAbortWhileCallersSend() throws Exception {
        abortRace(System.getProperty("crb", "65536"));
    }

    private void abortRace(String callerRunBytes) throws Exception {
        FakeContext ctxA = new FakeContext(config(TcpSettings.CALLER_RUN_BYTES, callerRunBytes));
        FakeContext ctxB = new FakeContext(config());
        int threads = 4;
        try (Mapped memA = new Mapped(threads * AREA);
                Mapped memB = new Mapped(threads * AREA)) {
            TcpTransport a = new TcpTransport(ctxA);
            TcpTransport b = new TcpTransport(ctxB);
            try {
                ctxA.memory.register(memA.address, memA.length, MemoryLocation.CPU);
                ctxB.memory.register(memB.address, memB.length, MemoryLocation.CPU);
                SegmentDescriptor peerB = TcpTestKit.describe(b);
                a.warmup(peerB);
                long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(2500);
                AtomicInteger aborted = new AtomicInteger();
                AtomicInteger checked = new AtomicInteger();
                ExecutorService pool = Executors.newFixedThreadPool(threads);
                try {
                    List<Future<?>> futures = new ArrayList<>();
                    for (int t = 0; t < threads; t++) {
                        final int id = t;
                        futures.add(pool.submit(() -> {
                            SplittableRandom rnd = new SplittableRandom(42 + id);
                            long local = memA.address + id * AREA;
                            long remote = memB.address + id * AREA;
                            long half = AREA / 2; // first half: checked traffic; second: aborted READs
                            long cursor = 0;
                            while (System.nanoTime() < end) {
                                int kind = rnd.nextInt(4);
                                if (kind == 0) {
                                    FakeSubmission s = smallBatch(rnd, Opcode.READ, local + half, remote + half, half);
                                    a.submit(peerB, s);
                                    if (rnd.nextBoolean()) {
                                        Thread.sleep(0, rnd.nextInt(100_000));
                                    }
                                    s.endAll(TransferStatus.TIMEOUT, "deadline"); // what the engine does first
                                    a.abort(s);
                                    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                                    while (s.partsOutstanding() > 0 && System.nanoTime() < until) {
                                        Thread.sleep(1);
                                    }
                                    assertEquals(0, s.partsOutstanding(), "parts never reported after abort");
                                    for (int i = 0; i < s.size(); i++) {
                                        fill(s.local[i], s.length[i], 0x77);
                                    }
                                    Thread.sleep(1);
                                    for (int i = 0; i < s.size(); i++) {
                                        assertTrue(allEqual(s.local[i], s.length[i], 0x77),
                                                "written after every part was reported");
                                    }
                                    assertEquals(0, s.overCompleted.get());
                                    aborted.incrementAndGet();
                                    continue;
                                }
                                // WRITE random bytes, READ them back elsewhere, compare
                                Opcode op = kind == 1 ? Opcode.READ : Opcode.WRITE;
                                FakeSubmission s = smallBatch(rnd, op, local + cursor, remote + cursor, WINDOW);
                                cursor = (cursor + WINDOW) % half;
                                long seed = rnd.nextLong();
                                for (int i = 0; i < s.size(); i++) {
                                    fillRandom(op == Opcode.WRITE ? s.local[i] : s.remote[i], s.length[i], seed + i);
                                }
                                a.submit(peerB, s);
                                assertTrue(s.await(10_000), "a submission never ended");
                                assertEquals(0, s.overCompleted.get());
                                // aborting other batches on the same lanes never fails this one
                                assertEquals("", s.failures(), "a batch next to aborted ones");
                                for (int i = 0; i < s.size(); i++) {
                                    assertEquals(-1, mismatch(s.local[i], s.remote[i], s.length[i]),
                                            "request " + i + " of " + op);
                                    checked.incrementAndGet();
                                }
                            }
                            return null;
                        }));
                    }
                    for (Future<?> f : futures) {
                        f.get(30, TimeUnit.SECONDS);
                    }
                } finally {
                    pool.shutdownNow();
                }
                long runs = a.counters().get("caller_runs");
                assertTrue(aborted.get() > 0 && checked.get() > 0, aborted + " aborted, " + checked + " checked");
                assertTrue(runs > 0 == !callerRunBytes.equals("0"), "caller-runs: " + a.counters());
                // healthy afterwards, and a lone small request is sent by its caller
                FakeSubmission w = FakeSubmission.of(Opcode.WRITE, memA.address, memB.address, 64);
                fillRandom(memA.address, 64, 7);
                a.submit(peerB, w);
                assertTrue(w.await(10_000));
                assertEquals("", w.failures());
                assertEquals(-1, mismatch(memA.address, memB.address, 64));
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                while (ctxB.memory.outstanding.get() != 0 && System.nanoTime() < until) {
                    Thread.sleep(10);
                }
                assertEquals(0, ctxB.memory.outstanding.get(), "pins left on the target");
            } finally {
                a.close();
                b.close();
            }
        }
    }

    @Test
    void shouldEndEverySubmissionWhenClosedUnderCallerRuns() throws Exception {
        int threads = 3;
        try (Mapped memA = new Mapped(threads * AREA);
                Mapped memB = new Mapped(threads * AREA)) {
            FakeContext ctxB = new FakeContext(config());
            TcpTransport b = new TcpTransport(ctxB);
            ctxB.memory.register(memB.address, memB.length, MemoryLocation.CPU);
            SegmentDescriptor peerB = TcpTestKit.describe(b);
            long runs = 0;
            long[] cursorOf = new long[threads]; // across rounds: the target outlives the initiators
            try {
                for (int round = 0; round < 12; round++) {
                    FakeContext ctxA = new FakeContext(config());
                    TcpTransport a = new TcpTransport(ctxA);
                    ctxA.memory.register(memA.address, memA.length, MemoryLocation.CPU);
                    a.warmup(peerB);
                    CountDownLatch started = new CountDownLatch(threads);
                    ExecutorService pool = Executors.newFixedThreadPool(threads);
                    List<Future<?>> futures = new ArrayList<>();
                    final int r = round;

                    for (int t = 0; t < threads; t++) {
                        final int id = t;
                        futures.add(pool.submit(() -> {
                            SplittableRandom rnd = new SplittableRandom(r * 31 + id);
                            long local = memA.address + id * AREA;
                            long remote = memB.address + id * AREA;
                            started.countDown();
                            while (true) {
                                Opcode op = rnd.nextBoolean() ? Opcode.READ : Opcode.WRITE;
                                long cur = cursorOf[id];
                                cursorOf[id] = (cur + WINDOW) % AREA;
                                FakeSubmission s = smallBatch(rnd, op, local + cur, remote + cur, WINDOW);
                                long seed = rnd.nextLong();
                                for (int i = 0; i < s.size(); i++) {
                                    fillRandom(op == Opcode.WRITE ? s.local[i] : s.remote[i], s.length[i], seed + i);
                                }
                                a.submit(peerB, s);
                                assertTrue(s.await(10_000), "a submission never ended");
                                assertEquals(0, s.overCompleted.get());
                                boolean canceled = false;
                                for (int i = 0; i < s.size(); i++) {
                                    if (s.status(i) == TransferStatus.COMPLETED) {
                                        assertEquals(-1, mismatch(s.local[i], s.remote[i], s.length[i]));
                                    } else {
                                        canceled = true;
                                    }
                                }
                                if (canceled) {
                                    return null; // the transport closed
                                }
                            }
                        }));
                    }
                    try {
                        started.await();
                        Thread.sleep(20 + round * 7L);
                        long t0 = System.nanoTime();
                        a.close();
                        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5), "close hung");
                        for (Future<?> f : futures) {
                            f.get(20, TimeUnit.SECONDS);
                        }
                    } finally {
                        pool.shutdownNow();
                    }
                    runs += a.counters().get("caller_runs");
                    int port = a.dataPort();
                    List<String> alive = Thread.getAllStackTraces().keySet().stream()
                            .filter(th -> th.getName().contains("-" + port + "-"))
                            .filter(Thread::isAlive)
                            .map(Thread::getName)
                            .toList();
                    assertEquals(List.of(), alive, "threads of the closed transport");
                }
                assertTrue(runs > 0, "no caller-run happened");
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                while (ctxB.memory.outstanding.get() != 0 && System.nanoTime() < until) {
                    Thread.sleep(10);
                }
                assertEquals(0, ctxB.memory.outstanding.get(), "pins left on the target");
            } finally {
                b.close();
            }
        }
    }
}
