package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.testkit.Bytes;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Engine logic over the in-memory test transport: registration, validation, deadlines, lifecycle. */
@Timeout(60)
class TransferEngineTest {
    private TransferEngine a;
    private TransferEngine b;

    static EngineConfig.Builder config() {
        return EngineConfig.builder()
                .environment(java.util.Map.of())
                .protocol(InMemoryTransportProvider.PROTOCOL)
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0);
    }

    @BeforeEach
    void start() {
        a = TransferEngine.create(config().transferTimeout(Duration.ofMillis(800)).build());
        b = TransferEngine.create(config().build());
    }

    @AfterEach
    void stop() {
        a.close();
        b.close();
        InMemoryTransportProvider.STALLED.clear();
    }

    private static byte[] read(HostMemory m, long offset, int n) {
        byte[] out = new byte[n];
        m.buffer(offset, n).get(out);
        return out;
    }

    @Test
    void shouldWriteAndReadBackBetweenTwoEngines() {
        try (HostMemory src = a.allocate(1 << 20); HostMemory dst = b.allocate(1 << 20)) {
            byte[] data = Bytes.random(1 << 20, 1);
            src.buffer(0, data.length).put(data);
            Segment seg = a.openSegment(b.localSegmentName());
            assertEquals(b.localSegmentName(), seg.name());
            a.write(seg, src.address(), dst.address(), data.length);
            assertArrayEquals(data, read(dst, 0, data.length));
            src.buffer(0, data.length).put(new byte[data.length]);
            a.read(seg, src.address() + 7, dst.address() + 3, 1000);
            assertArrayEquals(java.util.Arrays.copyOfRange(data, 3, 1003), read(src, 7, 1000));
        }
    }

    @Test
    void shouldCopyWithinTheLocalSegment() {
        try (HostMemory m = a.allocate(8192)) {
            byte[] data = Bytes.random(4096, 2);
            m.buffer(0, 4096).put(data);
            Segment self = a.openSegment(a.localSegmentName());
            assertTrue(self.isLocal());
            a.write(self, m.address(), m.address() + 4096, 4096);
            assertArrayEquals(data, read(m, 4096, 4096));
        }
    }

    @Test
    void shouldMarkBadRequestsInvalidAndRunTheRest() {
        try (HostMemory src = a.allocate(8192); HostMemory dst = b.allocate(4096); HostMemory dst2 = b.allocate(4096)) {
            Segment seg = a.openSegment(b.localSegmentName());
            long lo = Math.min(dst.address(), dst2.address());
            TransferBatch batch = a.newBatch(8)
                    .write(seg, src.address(), dst.address(), 4096)          // ok
                    .write(seg, src.address() + 100_000_000L, dst.address(), 16) // unregistered local
                    .write(seg, src.address(), dst.address() + 4000, 200)   // past the buffer's end
                    .write(seg, src.address(), dst.address(), 0)            // length 0
                    .write(seg, src.address(), -16L, 32)                    // address overflow
                    .write(seg, src.address(), lo + 4000, 200)              // spans two buffers (or a gap)
                    .write(seg, src.address(), 0x10, 16)                    // outside any buffer
                    .submit();
            batch.join();
            assertEquals(TransferStatus.COMPLETED, batch.status(0));
            for (int i = 1; i < 7; i++) {
                assertEquals(TransferStatus.INVALID, batch.status(i), "request " + i + ": " + batch.failureReason(i));
                assertNotNull(batch.failureReason(i));
            }
            assertTrue(batch.failureReason(1).contains("registerMemory"));
            assertTrue(batch.failureReason(2).contains("no single buffer"));
        }
    }

    @Test
    void shouldRefetchDescriptorForMemoryRegisteredAfterOpen() {
        try (HostMemory src = a.allocate(4096)) {
            Segment seg = a.openSegment(b.localSegmentName());
            try (HostMemory later = b.allocate(4096)) {
                src.buffer(0, 4).put(new byte[] {1, 2, 3, 4});
                a.write(seg, src.address(), later.address(), 4);
                assertEquals(3, later.buffer(0, 4).get(2));
            }
        }
    }

    @Test
    void shouldTimeOutStalledTransfersWithinTheDeadline() throws Exception {
        try (HostMemory src = a.allocate(4096); HostMemory dst = b.allocate(4096)) {
            Segment seg = a.openSegment(b.localSegmentName());
            InMemoryTransportProvider.STALLED.add(b.localSegmentName());
            long start = System.nanoTime();
            TransferBatch batch = a.newBatch(2).write(seg, src.address(), dst.address(), 64).submit();
            assertTrue(batch.await(Duration.ofSeconds(5)));
            long ms = (System.nanoTime() - start) / 1_000_000;
            assertEquals(TransferStatus.TIMEOUT, batch.status(0));
            assertTrue(ms >= 750 && ms < 1500, "ended after " + ms + " ms, deadline 800 ms");
            assertTrue(batch.completion().isDone());
            MooncakeException e = assertThrows(MooncakeException.class, () -> a.write(seg, src.address(), dst.address(), 8));
            assertTrue(e.getMessage().contains("TIMEOUT"), e.getMessage());
        }
    }

    @Test
    void shouldCancelInFlightBatchesOnClose() throws Exception {
        HostMemory src = a.allocate(4096);
        HostMemory dst = b.allocate(4096);
        Segment seg = a.openSegment(b.localSegmentName());
        InMemoryTransportProvider.STALLED.add(b.localSegmentName());
        TransferBatch batch = a.newBatch(1).write(seg, src.address(), dst.address(), 64).submit();
        a.close();
        assertEquals(TransferStatus.CANCELED, batch.status(0));
        MooncakeException e = assertThrows(MooncakeException.class, () -> a.openSegment(b.localSegmentName()));
        assertEquals(ErrorCode.CLOSED, e.code());
        assertThrows(MooncakeException.class, () -> a.newBatch(1));
        a.close();
        src.close();
        dst.close();
    }

    @Test
    void shouldRefuseBadRegistrations() {
        MooncakeException heap = assertThrows(MooncakeException.class, () -> a.registerMemory(ByteBuffer.allocate(64)));
        assertTrue(heap.getMessage().contains("allocateDirect"));
        ByteBuffer direct = ByteBuffer.allocateDirect(4096);
        MemoryRegion r = a.registerMemory(direct);
        assertThrows(MooncakeException.class, () -> a.registerMemory(r.address() + 100, 10, "cpu:0"));
        assertThrows(MooncakeException.class, () -> a.registerMemory(r.address() + 8192, 0, "cpu:0"));
        a.unregisterMemory(r.address());
        assertThrows(MooncakeException.class, () -> a.unregisterMemory(r.address()));
        a.registerMemory(r.address() + 100, 10, "cpu:0");
    }

    @Test
    void shouldAllocateMoreThanTwoGiB() {
        try (HostMemory big = a.allocate((2L << 30) + 1)) {
            assertEquals(0, big.address() % 4096);
            assertTrue(big.length() > (2L << 30));
            big.buffer(big.length() - 8, 8).putLong(0, 42);
            assertEquals(42, big.buffer(big.length() - 8, 8).getLong(0));
        }
    }

    @Test
    void shouldFailOpenSegmentOfUnknownPeerQuickly() {
        long start = System.nanoTime();
        MooncakeException e = assertThrows(MooncakeException.class, () -> a.openSegment("127.0.0.1:1"));
        assertEquals(ErrorCode.SEGMENT_NOT_FOUND, e.code());
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(6));
    }

    @Test
    void shouldDeliverNotifications() {
        a.sendNotification(b.localSegmentName(), "kv ready: req-1");
        a.sendNotification(b.localSegmentName(), "kv ready: req-2");
        List<Notification> got = b.pollNotifications();
        assertEquals(List.of(new Notification(a.localSegmentName(), "kv ready: req-1"),
                new Notification(a.localSegmentName(), "kv ready: req-2")), got);
        assertTrue(b.pollNotifications().isEmpty());
    }

    @Test
    void shouldCountHandshakeFramesAndNotificationsUnderTheirNames() throws InterruptedException {
        long servedBefore = b.counters().get("handshake.frames_served");
        a.sendNotification(b.localSegmentName(), "kv ready: req-3");
        b.pollNotifications();
        // the server counts a frame once its reply is written, which may be just after the sender read it
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (b.counters().get("handshake.frames_served") == servedBefore && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        java.util.Map<String, Long> c = b.counters();
        assertEquals(servedBefore + 1, c.get("handshake.frames_served"));
        assertEquals(0L, c.get("notifications.refused"));
        assertEquals(0L, c.get("handshake.frames_rejected"));
        assertTrue(c.containsKey("handshake.connections_open"), c.toString());
        assertEquals(0L, c.get("cuda_ipc.requests"));
    }

    @Test
    void shouldWarmupIdempotentlyAndIgnoreSelf() {
        a.warmupSegment(b.localSegmentName());
        a.warmupSegment(b.localSegmentName());
        a.warmupSegment(a.localSegmentName());
        a.warmupSegment("");
        assertThrows(MooncakeException.class, () -> a.warmupSegment("127.0.0.1:1"));
        assertSame(a.openSegment(b.localSegmentName()), a.openSegment(b.localSegmentName()));
    }

    @Test
    void shouldServeSixtyFourPeersOpeningAtOnce() throws Exception {
        List<TransferEngine> peers = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(64);
        try {
            for (int i = 0; i < 64; i++) {
                peers.add(TransferEngine.create(config().build()));
            }
            CountDownLatch gate = new CountDownLatch(1);
            List<Future<Segment>> opened = new ArrayList<>();
            for (TransferEngine p : peers) {
                opened.add(pool.submit(() -> {
                    gate.await();
                    return p.openSegment(b.localSegmentName());
                }));
            }
            gate.countDown();
            for (Future<Segment> f : opened) {
                assertEquals(b.localSegmentName(), f.get(30, TimeUnit.SECONDS).name());
            }
        } finally {
            pool.shutdownNow();
            peers.forEach(TransferEngine::close);
        }
    }

    @Test
    void shouldRetainNoForgottenBatch() throws Exception {
        try (HostMemory src = a.allocate(4096); HostMemory dst = b.allocate(4096)) {
            Segment seg = a.openSegment(b.localSegmentName());
            java.lang.ref.WeakReference<TransferBatch> completed =
                    new java.lang.ref.WeakReference<>(a.newBatch(1).write(seg, src.address(), dst.address(), 8).submit());
            InMemoryTransportProvider.STALLED.add(b.localSegmentName());
            java.lang.ref.WeakReference<TransferBatch> timedOut =
                    new java.lang.ref.WeakReference<>(a.newBatch(1).write(seg, src.address(), dst.address(), 8).submit());
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while ((completed.get() != null || timedOut.get() != null) && System.nanoTime() < end) {
                System.gc();
                TimeUnit.MILLISECONDS.sleep(50);
            }
            assertTrue(completed.get() == null, "a completed batch nobody holds is collected");
            assertTrue(timedOut.get() == null, "a timed-out batch nobody holds is collected");
        }
    }

    @Test
    void shouldCompleteFutureAndReportAllCompleted() throws Exception {
        try (HostMemory src = a.allocate(4096); HostMemory dst = b.allocate(4096)) {
            Segment seg = a.openSegment(b.localSegmentName());
            TransferBatch batch = a.submit(List.of(
                    TransferRequest.write(seg, src.address(), dst.address(), 100),
                    TransferRequest.read(seg, src.address() + 200, dst.address(), 100)));
            assertSame(batch, batch.completion().get(5, TimeUnit.SECONDS));
            assertTrue(batch.isAllCompleted());
            assertThrows(MooncakeException.class, batch::submit);
            assertFalse(a.newBatch(1).isDone());
        }
    }
}
