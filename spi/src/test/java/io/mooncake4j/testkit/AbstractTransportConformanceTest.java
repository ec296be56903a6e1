package io.mooncake4j.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.HostMemory;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.nativeio.NativeMemory;
import java.lang.ref.Reference;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
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
 * range touched; beside another installed transport (the test kit's in-memory one), routing by the
 * target's protocol and transactional registration; cancelling one batch never disturbing another,
 * closing the engine ending batches CANCELED, memory released only once the transport let go of it,
 * completion stages off transport threads. A transport's test subclasses this and names its protocol.
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
        return configBuilder().build();
    }

    /** The settings of {@link #config()}, to add to. */
    protected EngineConfig.Builder configBuilder() {
        EngineConfig.Builder b = EngineConfig.builder()
                .environment(Map.of())
                .protocol(protocol())
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(DEADLINE);
        settings().forEach(b::set);
        return b;
    }

    /** An engine of the transport under test with {@code MC_INSTALLED_TRANSPORTS} set. */
    private TransferEngine engineInstalling(String installed) {
        return TransferEngine.create(configBuilder().set(EngineConfig.INSTALLED_TRANSPORTS, installed).build());
    }

    /** An engine that publishes the test kit's in-memory protocol and installs nothing else. */
    private TransferEngine inMemoryEngine() {
        return TransferEngine.create(configBuilder()
                .protocol(InMemoryTransportProvider.PROTOCOL)
                .set(EngineConfig.INSTALLED_TRANSPORTS, "none")
                .build());
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
    void shouldReportTheTransportsCountersThroughTheEngineUnderItsProtocol() {
        try (HostMemory src = initiator.allocate(1 << 20); HostMemory dst = target.allocate(1 << 20)) {
            fillRandom(src.address(), 1 << 20, 3);
            initiator.write(initiator.openSegment(target.localSegmentName()), src.address(), dst.address(), 1 << 20);
            long bytes = 0;
            for (TransferEngine e : List.of(initiator, target)) {
                for (java.util.Map.Entry<String, Long> c : e.counters().entrySet()) {
                    if (c.getKey().startsWith(protocol() + ".") && c.getKey().contains("bytes")) {
                        bytes += c.getValue();
                    }
                }
            }
            assertTrue(bytes >= 1 << 20, "the " + protocol() + " counters of both engines count the MiB written: "
                    + initiator.counters() + " / " + target.counters());
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
    void shouldRouteEachRequestByTheProtocolTheTargetPublishes() {
        int half = 1 << 19;
        try (TransferEngine multi = engineInstalling(InMemoryTransportProvider.PROTOCOL);
                TransferEngine mem = inMemoryEngine();
                HostMemory src = multi.allocate(2 * half);
                HostMemory back = multi.allocate(2 * half);
                HostMemory viaUnderTest = target.allocate(half);
                HostMemory viaMem = mem.allocate(half)) {
            assertEquals(List.of(protocol(), InMemoryTransportProvider.PROTOCOL), multi.installedProtocols());
            assertEquals(protocol(), multi.localDescriptor().protocol(), "the primary transport's protocol is published");
            Segment a = multi.openSegment(target.localSegmentName());
            Segment b = multi.openSegment(mem.localSegmentName());
            fillRandom(src.address(), 2 * half, 17);
            TransferBatch w = multi.newBatch(2)
                    .write(a, src.address(), viaUnderTest.address(), half)
                    .write(b, src.address() + half, viaMem.address(), half)
                    .submit()
                    .join();
            assertTrue(w.isAllCompleted(), w.failureReason(0) + " / " + w.failureReason(1));
            assertSameBytes(src.address(), viaUnderTest.address(), half, "WRITE through " + protocol());
            assertSameBytes(src.address() + half, viaMem.address(), half, "WRITE through the in-memory transport");
            TransferBatch r = multi.newBatch(2)
                    .read(b, back.address() + half, viaMem.address(), half)
                    .read(a, back.address(), viaUnderTest.address(), half)
                    .submit()
                    .join();
            assertTrue(r.isAllCompleted(), r.failureReason(0) + " / " + r.failureReason(1));
            assertSameBytes(src.address(), back.address(), 2 * half, "READ through both transports");
        }
    }

    @Test
    void shouldFailRequestsToAPeerWhoseProtocolIsNotInstalledNamingBoth() {
        try (TransferEngine only = engineInstalling("none");
                TransferEngine mem = inMemoryEngine();
                HostMemory src = only.allocate(4096);
                HostMemory dst = target.allocate(4096);
                HostMemory unreachable = mem.allocate(4096)) {
            NativeMemory.fill(unreachable.address(), 4096, 0x3C);
            fillRandom(src.address(), 4096, 23);
            Segment memSegment = only.openSegment(mem.localSegmentName());
            Segment live = only.openSegment(target.localSegmentName());
            TransferBatch b = only.newBatch(2)
                    .write(memSegment, src.address(), unreachable.address(), 4096)
                    .write(live, src.address(), dst.address(), 4096)
                    .submit()
                    .join();
            assertEquals(TransferStatus.INVALID, b.status(0), b.failureReason(0));
            String why = b.failureReason(0);
            assertTrue(why.contains("'" + InMemoryTransportProvider.PROTOCOL + "'") && why.contains(protocol())
                    && why.contains(EngineConfig.INSTALLED_TRANSPORTS), why);
            assertEquals(TransferStatus.COMPLETED, b.status(1), b.failureReason(1));
            assertSameBytes(src.address(), dst.address(), 4096, "the reachable peer's request");
            assertTrue(NativeMemory.wrap(unreachable.address(), 4096).equals(filled(4096, 0x3C)), "nothing reached it");
            MooncakeException e = assertThrows(MooncakeException.class, () -> only.warmupSegment(mem.localSegmentName()));
            assertEquals(ErrorCode.TRANSPORT_UNAVAILABLE, e.code());
        }
    }

    @Test
    void shouldRollBackRegistrationWhenAnotherTransportRefuses() {
        String first = InMemoryTransportProvider.PROTOCOL;
        String refusing = InMemoryTransportProvider.Second.PROTOCOL;
        InMemoryTransportProvider.REFUSING.add(refusing);
        try (TransferEngine e = engineInstalling(first + "," + refusing);
                HostMemory dst = target.allocate(4096)) {
            String firstKey = first + "@" + e.localSegmentName();
            ByteBuffer buf = ByteBuffer.allocateDirect(1 << 16);
            long address = NativeMemory.address(buf);
            MooncakeException refused = assertThrows(MooncakeException.class, () -> e.registerMemory(buf));
            assertEquals(ErrorCode.REGISTRATION, refused.code());
            assertTrue(refused.getMessage().contains(refusing), refused.getMessage());
            assertEquals(Set.of(), InMemoryTransportProvider.REGISTERED.getOrDefault(firstKey, Set.of()),
                    "the transport that had accepted the region was rolled back");
            assertTrue(e.localDescriptor().buffers().isEmpty(), "nothing published");
            Segment seg = e.openSegment(target.localSegmentName());
            TransferBatch b = e.newBatch(1).write(seg, address, dst.address(), 4096).submit().join();
            assertEquals(TransferStatus.INVALID, b.status(0), "the engine kept nothing registered");

            InMemoryTransportProvider.REFUSING.clear();
            e.registerMemory(buf);
            assertEquals(Set.of(address), InMemoryTransportProvider.REGISTERED.get(firstKey));
            fillRandom(address, 4096, 29);
            e.write(seg, address, dst.address(), 4096);
            assertSameBytes(address, dst.address(), 4096, "after registering again");
            e.unregisterMemory(address);
            assertEquals(Set.of(), InMemoryTransportProvider.REGISTERED.get(firstKey), "unregistered everywhere");
            Reference.reachabilityFence(buf);
        } finally {
            InMemoryTransportProvider.REFUSING.clear();
        }
    }

    @Test
    void shouldLeaveAnotherBatchToTheSamePeerIntactWhenOneIsCancelled() throws Exception {
        int n = 32;
        long block = 1 << 20;
        try (HostMemory src = initiator.allocate(2 * n * block); HostMemory dst = target.allocate(2 * n * block)) {
            Segment seg = initiator.openSegment(target.localSegmentName());
            for (int round = 0; round < 4; round++) {
                fillRandom(src.address(), 2 * n * block, 31 + round);
                TransferBatch x = initiator.newBatch(n);
                TransferBatch y = initiator.newBatch(n);
                for (int i = 0; i < n; i++) {
                    x.write(seg, src.address() + i * block, dst.address() + i * block, block);
                    y.write(seg, src.address() + (n + i) * block, dst.address() + (n + i) * block, block);
                }
                x.submit();
                y.submit();
                x.close();
                assertTrue(x.isDone(), "a cancelled batch ends at once");
                for (int i = 0; i < n; i++) {
                    TransferStatus st = x.status(i);
                    assertTrue(st == TransferStatus.COMPLETED || st == TransferStatus.CANCELED, st + ": " + x.failureReason(i));
                }
                assertTrue(y.await(DEADLINE.plusSeconds(5)));
                for (int i = 0; i < n; i++) {
                    assertEquals(TransferStatus.COMPLETED, y.status(i), "round " + round + ", request " + i
                            + " of the untouched batch: " + y.failureReason(i));
                }
                assertSameBytes(src.address() + n * block, dst.address() + n * block, n * block,
                        "the batch next to a cancelled one");
            }
        }
    }

    @Test
    void shouldEndBatchesInFlightCanceledWhenTheEngineCloses() throws Exception {
        long block = 1 << 20;
        TransferEngine closing = TransferEngine.create(config());
        try (HostMemory src = closing.allocate(8 * block); HostMemory dst = target.allocate(8 * block)) {
            Segment seg = closing.openSegment(target.localSegmentName());
            List<TransferBatch> batches = new ArrayList<>();
            for (int k = 0; k < 100; k++) {
                TransferBatch b = closing.newBatch(8);
                for (int i = 0; i < 8; i++) {
                    b.write(seg, src.address() + i * block, dst.address() + i * block, block);
                }
                batches.add(b.submit());
            }
            closing.close();
            int canceled = 0;
            for (TransferBatch b : batches) {
                assertTrue(b.isDone(), "close() ends every batch before it returns");
                for (int i = 0; i < 8; i++) {
                    TransferStatus st = b.status(i);
                    assertTrue(st == TransferStatus.COMPLETED || st == TransferStatus.CANCELED,
                            "a request in flight when the engine closed ended " + st + ": " + b.failureReason(i));
                    canceled += st == TransferStatus.CANCELED ? 1 : 0;
                }
            }
            assertTrue(canceled > 0, "800 MiB of writes cannot all be done when close() is called");
        } finally {
            closing.close();
        }
    }

    @Test
    void shouldReleaseLocalMemoryOnlyOnceTheTransportLetGoOfIt() throws Exception {
        int n = 64;
        long block = 1 << 20;
        try (HostMemory dst = initiator.allocate(n * block);
                HostMemory snapshot = initiator.allocate(n * block);
                HostMemory remote = target.allocate(n * block)) {
            NativeMemory.fill(remote.address(), n * block, 0x5A);
            Segment seg = initiator.openSegment(target.localSegmentName());
            for (int round = 0; round < 3; round++) {
                NativeMemory.fill(dst.address(), n * block, 0);
                TransferBatch b = initiator.newBatch(n);
                for (int i = 0; i < n; i++) {
                    b.read(seg, dst.address() + i * block, remote.address() + i * block, block);
                }
                b.submit();
                b.close();
                assertTrue(b.isDone());
                // waits (at most the transfer timeout) until the transport reported every part it
                // issued, and throws if it never does
                initiator.unregisterMemory(dst.address());
                NativeMemory.copy(snapshot.address(), dst.address(), n * block);
                TimeUnit.MILLISECONDS.sleep(100);
                assertSameBytes(snapshot.address(), dst.address(), n * block,
                        "round " + round + ": bytes landed after the transport let go of the memory");
                initiator.registerMemory(dst.address(), dst.length(), "cpu:0");
            }
        }
    }

    @Test
    void shouldCompleteFuturesOnEngineThreadsSoThatStagesMayWaitForTransfers() throws Exception {
        int block = 1 << 20;
        try (HostMemory src = initiator.allocate(block); HostMemory dst = target.allocate(2 * block)) {
            Segment seg = initiator.openSegment(target.localSegmentName());
            fillRandom(src.address(), block, 37);
            TransferBatch first = initiator.newBatch(1).write(seg, src.address(), dst.address(), block);
            CompletableFuture<String> stage = first.completion().thenApply(done -> {
                String thread = Thread.currentThread().getName();
                // on a transport thread this could wait for that very thread
                TransferBatch second = initiator.newBatch(1)
                        .write(seg, src.address(), dst.address() + block, block)
                        .submit()
                        .join();
                return thread + " " + second.status(0);
            });
            first.submit();
            String result = stage.get(DEADLINE.plusSeconds(10).toSeconds(), TimeUnit.SECONDS);
            assertTrue(result.startsWith("mooncake4j-completion-"), "the stage ran on " + result);
            assertTrue(result.endsWith(" COMPLETED"), result);
            assertSameBytes(src.address(), dst.address() + block, block, "the stage's transfer");
        }
    }

    private static ByteBuffer filled(int length, int value) {
        ByteBuffer b = ByteBuffer.allocate(length);
        while (b.hasRemaining()) {
            b.put((byte) value);
        }
        return b.flip();
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
