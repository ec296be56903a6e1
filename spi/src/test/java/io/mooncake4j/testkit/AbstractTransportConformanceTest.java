package io.mooncake4j.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What every transport must pass, through the public engine API: two engines, real transfers, every
 * byte checked, bad input answered with the documented status in time, nothing outside the target
 * range touched. A transport's test subclasses this and names its protocol.
 */
@Tag("integration")
@Timeout(120)
public abstract class AbstractTransportConformanceTest {
    protected static final Duration DEADLINE = Duration.ofSeconds(3);
    protected TransferEngine initiator;
    protected TransferEngine target;

    /** The protocol under test. */
    protected abstract String protocol();

    /** Extra settings for both engines. */
    protected Map<String, String> settings() {
        return Map.of();
    }

    protected EngineConfig config() {
        EngineConfig.Builder b = EngineConfig.builder()
                .environment(Map.of())
                .protocol(protocol())
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(DEADLINE);
        settings().forEach(b::set);
        return b.build();
    }

    @BeforeEach
    void startEngines() {
        initiator = TransferEngine.create(config());
        target = TransferEngine.create(config());
    }

    @AfterEach
    void stopEngines() {
        initiator.close();
        target.close();
    }

    /** Fills memory with seeded random bytes. */
    public static void fillRandom(long address, long length, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        long off = 0;
        while (off < length) {
            int n = (int) Math.min(1 << 30, length - off);
            ByteBuffer b = NativeMemory.wrap(address + off, n);
            while (b.remaining() >= 8) {
                b.putLong(r.nextLong());
            }
            while (b.hasRemaining()) {
                b.put((byte) r.nextInt());
            }
            off += n;
        }
    }

    /** Asserts two native ranges hold the same bytes, naming the first difference. */
    public static void assertSameBytes(long expected, long actual, long length, String what) {
        long off = 0;
        while (off < length) {
            int n = (int) Math.min(1 << 30, length - off);
            int m = NativeMemory.wrap(expected + off, n).mismatch(NativeMemory.wrap(actual + off, n));
            assertEquals(-1, m, what + ": first difference at byte " + (off + m));
            off += n;
        }
    }

    @Test
    void shouldWriteAndReadBackEveryByteFromOneByteTo64MiB() {
        long[] sizes = {1, 7, 4096, 65_537, (1 << 20) + 3, 16 << 20, 64 << 20};
        try (HostMemory src = initiator.allocate(64 << 20);
                HostMemory back = initiator.allocate(64 << 20);
                HostMemory dst = target.allocate((64 << 20) + 4096)) {
            Segment seg = initiator.openSegment(target.localSegmentName());
            long seed = 1;
            for (long size : sizes) {
                fillRandom(src.address(), size, seed++);
                initiator.write(seg, src.address(), dst.address() + 1, size);
                assertSameBytes(src.address(), dst.address() + 1, size, "WRITE of " + size);
                initiator.read(seg, back.address(), dst.address() + 1, size);
                assertSameBytes(src.address(), back.address(), size, "READ of " + size);
            }
        }
    }

    @Test
    void shouldRunManyThreadsAndBatchesAtOnce() throws Exception {
        int threads = 6;
        int batches = 12;
        int perBatch = 24;
        int slot = 96 * 1024;
        long area = (long) threads * perBatch * slot;
        try (HostMemory src = initiator.allocate(area);
                HostMemory back = initiator.allocate(area);
                HostMemory dst = target.allocate(area)) {
            Segment seg = initiator.openSegment(target.localSegmentName());
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> work = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int thread = t;
                    work.add(pool.submit(() -> {
                        SplittableRandom r = new SplittableRandom(thread);
                        for (int k = 0; k < batches; k++) {
                            long base = (long) thread * perBatch * slot;
                            fillRandom(src.address() + base, (long) perBatch * slot, r.nextLong());
                            int[] sizes = new int[perBatch];
                            TransferBatch w = initiator.newBatch(perBatch);
                            for (int i = 0; i < perBatch; i++) {
                                sizes[i] = 1 + r.nextInt(slot);
                                long off = base + (long) i * slot;
                                w.write(seg, src.address() + off, dst.address() + off, sizes[i]);
                            }
                            assertTrue(w.submit().join().isAllCompleted(), "writes of batch " + k);
                            TransferBatch rd = initiator.newBatch(perBatch);
                            for (int i = 0; i < perBatch; i++) {
                                long off = base + (long) i * slot;
                                rd.read(seg, back.address() + off, dst.address() + off, sizes[i]);
                            }
                            assertTrue(rd.submit().join().isAllCompleted(), "reads of batch " + k);
                            for (int i = 0; i < perBatch; i++) {
                                long off = base + (long) i * slot;
                                assertSameBytes(src.address() + off, back.address() + off, sizes[i], "thread " + thread);
                            }
                        }
                        return null;
                    }));
                }
                for (Future<?> f : work) {
                    f.get(100, TimeUnit.SECONDS);
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    void shouldAnswerBadInputWithInvalidAndTouchNothingOutsideTheTarget() {
        try (HostMemory src = initiator.allocate(1 << 16);
                HostMemory dst = target.allocate(1 << 16);
                HostMemory other = target.allocate(1 << 16)) {
            NativeMemory.fill(dst.address(), dst.length(), 0xAB);
            NativeMemory.fill(other.address(), other.length(), 0xAB);
            fillRandom(src.address(), src.length(), 9);
            Segment seg = initiator.openSegment(target.localSegmentName());
            long dstEnd = dst.address() + dst.length();
            TransferBatch b = initiator.newBatch(8)
                    .write(seg, src.address(), dst.address() + 4096, 8192)         // 0 ok
                    .write(seg, src.address() + (1 << 16) - 8, dst.address(), 64)  // 1 local range past its region
                    .write(seg, src.address(), dstEnd - 100, 200)                  // 2 past the end of dst
                    .write(seg, src.address(), dst.address(), 0)                   // 3 length 0
                    .write(seg, src.address(), -100L, 200)                         // 4 address overflow
                    .read(seg, src.address(), 0x1000, 16)                          // 5 outside any buffer
                    .submit();
            b.join();
            assertEquals(TransferStatus.COMPLETED, b.status(0));
            for (int i = 1; i < 6; i++) {
                assertEquals(TransferStatus.INVALID, b.status(i), "request " + i + ": " + b.failureReason(i));
            }
            ByteBuffer d = dst.buffer();
            for (int i = 0; i < d.capacity(); i++) {
                if (i < 4096 || i >= 4096 + 8192) {
                    assertEquals((byte) 0xAB, d.get(i), "byte " + i + " outside the written range changed");
                }
            }
            assertSameBytes(src.address(), dst.address() + 4096, 8192, "the valid write");
            ByteBuffer o = other.buffer();
            for (int i = 0; i < o.capacity(); i++) {
                assertEquals((byte) 0xAB, o.get(i), "neighbouring buffer changed at " + i);
            }
        }
    }

    @Test
    void shouldFailTransfersToAClosedPeerWithinTheDeadlineAndStayUsable() throws Exception {
        TransferEngine third = TransferEngine.create(config());
        try (HostMemory src = initiator.allocate(1 << 20); HostMemory dst = target.allocate(1 << 20)) {
            HostMemory gone = third.allocate(1 << 20);
            Segment dead = initiator.openSegment(third.localSegmentName());
            long goneAddress = gone.address();
            third.close();
            long start = System.nanoTime();
            TransferBatch b = initiator.newBatch(1).write(dead, src.address(), goneAddress, 1 << 20).submit();
            assertTrue(b.await(DEADLINE.plusSeconds(2)), "ends within the deadline");
            TransferStatus st = b.status(0);
            assertTrue(st == TransferStatus.FAILED || st == TransferStatus.TIMEOUT, st + ": " + b.failureReason(0));
            assertTrue(System.nanoTime() - start < DEADLINE.plusMillis(500).toNanos());
            Segment live = initiator.openSegment(target.localSegmentName());
            fillRandom(src.address(), 1 << 20, 3);
            initiator.write(live, src.address(), dst.address(), 1 << 20);
            assertSameBytes(src.address(), dst.address(), 1 << 20, "after a dead peer");
            gone.close();
        } finally {
            third.close();
        }
    }

    @Test
    void shouldRejectUseAfterClose() {
        Segment seg = initiator.openSegment(target.localSegmentName());
        initiator.close();
        assertEquals(io.mooncake4j.ErrorCode.CLOSED,
                org.junit.jupiter.api.Assertions.assertThrows(io.mooncake4j.MooncakeException.class,
                        () -> initiator.newBatch(1).write(seg, 1, 1, 1).submit()).code());
    }
}
