package io.mooncake4j.transport.tcp;

import static io.mooncake4j.transport.tcp.TcpTestKit.allEqual;
import static io.mooncake4j.transport.tcp.TcpTestKit.config;
import static io.mooncake4j.transport.tcp.TcpTestKit.fill;
import static io.mooncake4j.transport.tcp.TcpTestKit.fillRandom;
import static io.mooncake4j.transport.tcp.TcpTestKit.mismatch;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.TransportProvider;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeContext;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeSubmission;
import io.mooncake4j.transport.tcp.TcpTestKit.Mapped;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Two transports on loopback, plus raw sockets that speak the wire or misbehave. */
@Tag("integration")
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class TcpTransportIntegrationTest {
    private static final long MiB = 1 << 20;

    private static FakeContext ctxA;
    private static FakeContext ctxB;
    private static TcpTransport a; // initiator
    private static TcpTransport b; // target
    private static Mapped memA;
    private static Mapped memB;
    private static SegmentDescriptor peerB;

    @BeforeAll
    static void start() {
        ctxA = new FakeContext(config());
        ctxB = new FakeContext(config());
        a = new TcpTransport(ctxA);
        b = new TcpTransport(ctxB);
        memA = new Mapped(256 * MiB);
        memB = new Mapped(160 * MiB);
        ctxA.memory.register(memA.address, memA.length, MemoryLocation.CPU);
        ctxB.memory.register(memB.address, memB.length, MemoryLocation.CPU);
        peerB = TcpTestKit.describe(b);
    }

    @AfterAll
    static void stop() {
        a.close();
        b.close();
        memA.close();
        memB.close();
    }

    private static void submitAndAwait(TcpTransport t, SegmentDescriptor peer, FakeSubmission s)
            throws InterruptedException {
        t.submit(peer, s);
        assertTrue(s.await(20_000), "transfer did not end in time");
        assertEquals("", s.failures());
    }

    // ---------------------------------------------------------------- data

    @Test
    void shouldPublishPortAndVersion() {
        assertEquals(b.dataPort(), peerB.longField("tcp_data_port", -1));
        assertEquals(2, peerB.longField("tcp_proto_version", -1));
        assertEquals("tcp", b.protocol());
    }

    @Test
    void shouldWriteAndReadRandomDataFromOneByteTo64MiB() throws Exception {
        long[] sizes = {
            1, 2, 7, 100, 4095, 4096, 4097, 65536, 65537, MiB - 1, MiB, MiB + 1, 3 * MiB + 7,
            17 * MiB + 3, 64 * MiB
        };
        SplittableRandom rnd = new SplittableRandom(42);
        fill(memB.address, memB.length, 0x5A);
        fillRandom(memA.address, 128 * MiB, 1);
        FakeSubmission writes = new FakeSubmission(sizes.length);
        FakeSubmission reads = new FakeSubmission(sizes.length);
        long[] dst = new long[sizes.length];
        long src = memA.address;
        long cursorB = memB.address + 3;
        long back = memA.address + 128 * MiB;
        for (int i = 0; i < sizes.length; i++) {
            dst[i] = cursorB;
            writes.set(i, Opcode.WRITE, src, cursorB, sizes[i]);
            reads.set(i, Opcode.READ, back, cursorB, sizes[i]);
            src += sizes[i] + rnd.nextInt(64);
            back += sizes[i] + rnd.nextInt(64);
            cursorB += sizes[i] + 16 + rnd.nextInt(64); // gaps must stay untouched
        }
        assertTrue(cursorB < memB.address + memB.length);
        assertTrue(back < memA.address + memA.length);

        submitAndAwait(a, peerB, writes);
        for (int i = 0; i < sizes.length; i++) {
            assertEquals(-1, mismatch(writes.local[i], dst[i], sizes[i]), "WRITE of " + sizes[i]);
            long gapStart = dst[i] + sizes[i];
            long gapEnd = i + 1 < sizes.length ? dst[i + 1] : gapStart + 16;
            assertTrue(allEqual(gapStart, gapEnd - gapStart, 0x5A), "bytes after WRITE " + i);
        }
        assertTrue(allEqual(memB.address, 3, 0x5A));

        submitAndAwait(a, peerB, reads);
        for (int i = 0; i < sizes.length; i++) {
            assertEquals(-1, mismatch(reads.local[i], dst[i], sizes[i]), "READ of " + sizes[i]);
        }
        assertEquals(0, ctxB.memory.outstanding.get(), "every pin released");
    }

    @Test
    void shouldKeepDataIntactUnderManyConcurrentSubmissions() throws Exception {
        int threads = 6;
        int rounds = 25;
        long area = 20 * MiB; // per thread, on both sides
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                final int id = t;
                futures.add(
                        pool.submit(
                                () -> {
                                    runClient(id, area, rounds);
                                    return null;
                                }));
            }
            for (Future<?> f : futures) {
                f.get(25, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        // a READ's pins are released after its payload is written, so after the initiator may see it
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (ctxB.memory.outstanding.get() != 0 && System.nanoTime() < until) {
            Thread.sleep(10);
        }
        assertEquals(0, ctxB.memory.outstanding.get(), "pins left on the target");
    }

    private static void runClient(int id, long area, int rounds) throws Exception {
        SplittableRandom rnd = new SplittableRandom(100 + id);
        long srcBase = memA.address + id * area;
        long backBase = memA.address + 128 * MiB + id * area;
        long dstBase = memB.address + id * area;
        for (int r = 0; r < rounds; r++) {
            int n = 1 + rnd.nextInt(24);
            FakeSubmission w = new FakeSubmission(n);
            FakeSubmission rd = new FakeSubmission(n);
            long off = 0;
            for (int i = 0; i < n; i++) {
                long len =
                        rnd.nextInt(8) == 0
                                ? 1 + rnd.nextInt((int) (3 * MiB))
                                : 1 + rnd.nextInt(64 << 10);
                if (off + len > area / 2) {
                    len = 1;
                }
                w.set(i, Opcode.WRITE, srcBase + off, dstBase + off, len);
                rd.set(i, Opcode.READ, backBase + off, dstBase + off, len);
                off += len + rnd.nextInt(16);
            }
            fillRandom(srcBase, off, rnd.nextLong());
            submitAndAwait(a, peerB, w);
            submitAndAwait(a, peerB, rd);
            for (int i = 0; i < n; i++) {
                assertEquals(-1, mismatch(w.local[i], w.remote[i], w.length[i]), "WRITE " + i);
                assertEquals(-1, mismatch(rd.local[i], w.local[i], w.length[i]), "READ " + i);
            }
        }
    }

    @Test
    void shouldSurviveAbortsRacingLiveTraffic() throws Exception {
        int threads = 4;
        long area = 16 * MiB;
        long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(2500);
        AtomicInteger aborted = new AtomicInteger();
        AtomicInteger completed = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                final int id = t;
                futures.add(
                        pool.submit(
                                () -> {
                                    SplittableRandom rnd = new SplittableRandom(id);
                                    // aborted batches read into their own half, so that a
                                    // collateral failure's late parts cannot blur the check
                                    long local = memA.address + 128 * MiB + id * area;
                                    long remote = memB.address + id * area;
                                    long half = area / 2;
                                    while (System.nanoTime() < end) {
                                        boolean abort = rnd.nextInt(4) == 0;
                                        int n = 1 + rnd.nextInt(16);
                                        FakeSubmission s = new FakeSubmission(n);
                                        for (int i = 0; i < n; i++) {
                                            long len = 1 + rnd.nextInt((int) (2 * MiB));
                                            long off = rnd.nextLong(half - len) + (abort ? half : 0);
                                            s.set(i, Opcode.READ, local + off, remote + off, len);
                                        }
                                        a.submit(peerB, s);
                                        if (abort) {
                                            if (rnd.nextBoolean()) {
                                                Thread.sleep(0, rnd.nextInt(500_000));
                                            }
                                            s.endAll(TransferStatus.TIMEOUT, "deadline"); // what the engine does first
                                            a.abort(s);
                                            // every issued part is reported (the engine then releases the memory) ...
                                            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                                            while (s.partsOutstanding() > 0 && System.nanoTime() < until) {
                                                Thread.sleep(1);
                                            }
                                            assertEquals(0, s.partsOutstanding(), "parts never reported after abort");
                                            // ... and after that nothing may land in its memory any more
                                            for (int i = 0; i < n; i++) {
                                                fill(s.local[i], s.length[i], 0x77);
                                            }
                                            Thread.sleep(2);
                                            for (int i = 0; i < n; i++) {
                                                assertTrue(
                                                        allEqual(s.local[i], s.length[i], 0x77),
                                                        "written after every part was reported");
                                            }
                                            aborted.incrementAndGet();
                                        } else {
                                            assertTrue(s.await(10_000), "a submission never ended");
                                            // aborting other batches on the same lanes never fails this one
                                            assertEquals("", s.failures(), "a batch next to aborted ones");
                                            completed.incrementAndGet();
                                        }
                                        assertEquals(0, s.overCompleted.get());
                                    }
                                    return null;
                                }));
            }
            for (Future<?> f : futures) {
                f.get(20, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertTrue(aborted.get() > 0 && completed.get() > 0, aborted + " aborted, " + completed + " completed");
        // the transport is healthy afterwards
        FakeSubmission check = FakeSubmission.of(Opcode.READ, memA.address + 250 * MiB, memB.address, MiB);
        submitAndAwait(a, peerB, check);
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (ctxB.memory.outstanding.get() != 0 && System.nanoTime() < until) {
            Thread.sleep(10);
        }
        assertEquals(0, ctxB.memory.outstanding.get(), "pins left on the target");
    }

    @Test
    void shouldSpeakProtocolV1ToPeersThatDoNotAnnounceV2() throws Exception {
        SegmentDescriptor v1 = TcpTestKit.peer(b.dataPort(), null);
        long len = 3 * MiB + 11;
        long src = memA.address + 200 * MiB;
        long dst = memB.address + 130 * MiB;
        long back = memA.address + 210 * MiB;
        fillRandom(src, len, 9);
        submitAndAwait(a, v1, FakeSubmission.of(Opcode.WRITE, src, dst, len));
        // v1 has no acknowledgement: a WRITE is complete once sent, the target stores it soon after
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (mismatch(src, dst, len) != -1 && System.nanoTime() < until) {
            Thread.sleep(5);
        }
        assertEquals(-1, mismatch(src, dst, len));
        submitAndAwait(a, v1, FakeSubmission.of(Opcode.READ, back, dst, len));
        assertEquals(-1, mismatch(back, dst, len));

        // a v1 target closes the connection on a bad range: the request fails, the lane recovers
        FakeSubmission bad = FakeSubmission.of(Opcode.READ, back, memB.address + memB.length - 8, 64);
        a.submit(v1, bad);
        assertTrue(bad.await(10_000));
        assertEquals(TransferStatus.FAILED, bad.status(0));
        submitAndAwait(a, v1, FakeSubmission.of(Opcode.READ, back, dst, 4096));

        // GPU memory needs status frames: refused before anything is sent to a v1 peer
        FakeSubmission gpu = FakeSubmission.of(Opcode.WRITE, src, dst, 4096);
        gpu.cuda[0] = true;
        a.submit(v1, gpu);
        assertTrue(gpu.await(5000));
        assertEquals(TransferStatus.INVALID, gpu.status(0));
        assertTrue(gpu.reason(0).contains("speaks tcp protocol v1"), gpu.reason(0));
        submitAndAwait(a, v1, FakeSubmission.of(Opcode.READ, back, dst, 4096));
    }

    @Test
    void shouldRefuseLocalGpuMemoryWithoutSendingWhenNoDeviceProviderIsInstalled() throws Exception {
        // this context has no device provider: nothing can stage GPU memory on this side
        fill(memB.address, 4096, 0x5A);
        FakeSubmission s = new FakeSubmission(3)
                .set(0, Opcode.WRITE, memA.address, memB.address, 4096)
                .set(1, Opcode.READ, memA.address, memB.address, 4096)
                .set(2, Opcode.WRITE, memA.address + 4096, memB.address + 8, 8);
        s.cuda[0] = true;
        s.cuda[1] = true;
        fill(memA.address + 4096, 8, 0x11);
        long sentBefore = a.counters.partsSent.sum();
        a.submit(peerB, s);
        assertTrue(s.await(5000));
        for (int i = 0; i < 2; i++) {
            assertEquals(TransferStatus.INVALID, s.status(i), "request " + i);
            assertTrue(s.reason(i).contains("staged through pinned host buffers"), s.reason(i));
            assertTrue(s.reason(i).contains("add io.mooncake4j:mooncake4j-gpu-cuda with org.jcuda:jcuda"), s.reason(i));
        }
        assertEquals(TransferStatus.COMPLETED, s.status(2), s.reason(2));
        assertEquals(sentBefore + 1, a.counters.partsSent.sum(), "only the host request was sent");
        assertTrue(allEqual(memB.address, 8, 0x5A));
        assertTrue(allEqual(memB.address + 8, 8, 0x11));
        assertTrue(allEqual(memB.address + 16, 4096 - 16, 0x5A));
    }

    @Test
    void shouldReportRejectedRangeAsFailed() throws Exception {
        // inside the peer's address space but not registered there: the engine would refuse this,
        // but a stale descriptor can lead to it
        FakeSubmission s =
                FakeSubmission.of(Opcode.WRITE, memA.address, memB.address + memB.length - 10, 20);
        a.submit(peerB, s);
        assertTrue(s.await(5000));
        assertEquals(TransferStatus.FAILED, s.status(0));
        assertTrue(s.reason(0).contains("rejected"), s.reason(0));
        submitAndAwait(a, peerB, FakeSubmission.of(Opcode.WRITE, memA.address, memB.address, 20));
    }

    // ---------------------------------------------------------------- target checks on the wire

    @Test
    void shouldRejectBadRangesWithStatusAndLeaveMemoryUntouched() throws Exception {
        try (Mapped pair = new Mapped(8192);
                Mapped gpu = new Mapped(4096);
                Mapped unregistered = new Mapped(4096)) {
            MemoryRegion r1 = ctxB.memory.register(pair.address, 4096, MemoryLocation.CPU);
            ctxB.memory.register(pair.address + 4096, 4096, MemoryLocation.CPU);
            ctxB.memory.register(gpu.address, 4096, MemoryLocation.cuda(0));
            fill(pair.address, 8192, 0x5A);
            fill(gpu.address, 4096, 0x5A);
            fill(unregistered.address, 4096, 0x5A);
            try (SocketChannel ch = SocketChannel.open(new InetSocketAddress("127.0.0.1", b.dataPort()))) {
                ByteBuffer out = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
                writeRequest(out, 0xFFFF_FFFF_FFFF_FF00L, 512, TcpWire.OP_WRITE); // wraps around
                writeRequest(out, r1.address(), 0, TcpWire.OP_WRITE); // size 0
                writeRequest(out, pair.address + 4096 - 100, 200, TcpWire.OP_WRITE); // spans two
                writeRequest(out, unregistered.address, 64, TcpWire.OP_WRITE);
                writeRequest(out, gpu.address, 64, TcpWire.OP_WRITE); // GPU region, no device provider here
                writeRequest(out, pair.address + 8192 - 10, 20, TcpWire.OP_WRITE); // past the end
                writeRequest(out, pair.address + 100, 16, TcpWire.OP_WRITE); // valid
                writeRequest(out, unregistered.address, 64, TcpWire.OP_READ);
                writeRequest(out, pair.address + 100, 16, TcpWire.OP_READ); // valid
                out.flip();
                while (out.hasRemaining()) {
                    ch.write(out);
                }
                ByteBuffer in = readExactly(ch, 9 * 8 + 16);
                int[] expected = {1, 1, 1, 1, 1, 1, 0, 1, 0};
                for (int i = 0; i < expected.length; i++) {
                    long frame = in.getLong(i * 8);
                    assertTrue(TcpWire.isStatusFrame(frame), "frame " + i);
                    assertEquals(expected[i], TcpWire.statusCode(frame), "status of request " + i);
                }
                for (int i = 0; i < 16; i++) {
                    assertEquals((byte) 0xEE, in.get(72 + i));
                }
            }
            assertTrue(allEqual(pair.address, 100, 0x5A));
            assertTrue(allEqual(pair.address + 100, 16, 0xEE));
            assertTrue(allEqual(pair.address + 116, 8192 - 116, 0x5A));
            assertTrue(allEqual(gpu.address, 4096, 0x5A));
            assertTrue(allEqual(unregistered.address, 4096, 0x5A));
            ctxB.memory.regions.removeIf(p -> p.region.address() == pair.address
                    || p.region.address() == pair.address + 4096
                    || p.region.address() == gpu.address);
        }
        assertEquals(0, ctxB.memory.outstanding.get());
    }

    @Test
    void shouldCloseAfterRejectingHugeWriteOrV1OrGarbage() throws Exception {
        long unregistered = memB.address + memB.length + (1L << 40);
        // huge rejected v2 WRITE: status 1, then the connection closes instead of draining 1 GiB
        try (SocketChannel ch = SocketChannel.open(new InetSocketAddress("127.0.0.1", b.dataPort()))) {
            ByteBuffer out = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
            TcpWire.putHeader(out, 0, 1L << 30, unregistered, TcpWire.OP_WRITE, true);
            ch.write(out);
            ByteBuffer in = readExactly(ch, 8);
            assertEquals(TcpWire.statusFrame(TcpWire.STATUS_REJECTED), in.getLong(0));
            assertEquals(-1, ch.read(ByteBuffer.allocate(1)));
        }
        // rejected v1 request: no status frame in v1, the connection closes
        try (SocketChannel ch = SocketChannel.open(new InetSocketAddress("127.0.0.1", b.dataPort()))) {
            ByteBuffer out = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
            TcpWire.putHeader(out, 0, 64, unregistered, TcpWire.OP_READ, false);
            ch.write(out);
            assertEquals(-1, ch.read(ByteBuffer.allocate(1)));
        }
        // an unknown opcode means the stream cannot be trusted
        try (SocketChannel ch = SocketChannel.open(new InetSocketAddress("127.0.0.1", b.dataPort()))) {
            ByteBuffer out = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
            TcpWire.putHeader(out, 0, 64, memB.address, 5, true);
            ch.write(out);
            assertEquals(-1, ch.read(ByteBuffer.allocate(1)));
        }
    }

    private static void writeRequest(ByteBuffer out, long addr, long size, int op) {
        TcpWire.putHeader(out, out.position(), size, addr, op, true);
        out.position(out.position() + 24);
        if (op == TcpWire.OP_WRITE) {
            for (long i = 0; i < size && i < 4096; i++) {
                out.put((byte) 0xEE);
            }
        }
    }

    private static ByteBuffer readExactly(SocketChannel ch, int n) throws IOException {
        ByteBuffer in = ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
        while (in.hasRemaining()) {
            if (ch.read(in) < 0) {
                throw new IOException("closed after " + in.position() + " bytes");
            }
        }
        return in.flip();
    }

    // ---------------------------------------------------------------- failures

    @Test
    void shouldFailPromptlyWhenPeerClosesMidTransfer() throws Exception {
        try (RawServer server =
                new RawServer(
                        (n, ch) -> {
                            // WRITE: take some of the payload, then hang up
                            ByteBuffer buf = ByteBuffer.allocate(1 << 20);
                            ch.read(buf);
                        })) {
            SegmentDescriptor peer = TcpTestKit.peer(server.port(), 2);
            FakeSubmission w = FakeSubmission.of(Opcode.WRITE, memA.address, 0x10000, 32 * MiB);
            long t0 = System.nanoTime();
            a.submit(peer, w);
            assertTrue(w.await(5000), "WRITE did not fail in time");
            assertEquals(TransferStatus.FAILED, w.status(0));
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5));
        }
        try (RawServer server =
                new RawServer(
                        (n, ch) -> {
                            // READ: status OK and half the payload, then hang up
                            readExactly(ch, 24);
                            ByteBuffer out = ByteBuffer.allocate(8 + 1000).order(ByteOrder.LITTLE_ENDIAN);
                            out.putLong(TcpWire.statusFrame(0)).position(out.capacity()).flip();
                            ch.write(out);
                        })) {
            SegmentDescriptor peer = TcpTestKit.peer(server.port(), 2);
            FakeSubmission r = FakeSubmission.of(Opcode.READ, memA.address, 0x10000, 2000);
            a.submit(peer, r);
            assertTrue(r.await(5000), "READ did not fail in time");
            assertEquals(TransferStatus.FAILED, r.status(0));
        }
    }

    @Test
    void shouldFailWhenNothingListensAndStayUsable() throws Exception {
        int port;
        try (ServerSocketChannel s = ServerSocketChannel.open()) {
            s.bind(new InetSocketAddress("127.0.0.1", 0));
            port = ((InetSocketAddress) s.getLocalAddress()).getPort();
        }
        FakeSubmission s = FakeSubmission.of(Opcode.WRITE, memA.address, 0x10000, 4096);
        a.submit(TcpTestKit.peer(port, 2), s);
        assertTrue(s.await(10_000));
        assertEquals(TransferStatus.FAILED, s.status(0));
        assertTrue(s.reason(0).contains("cannot connect"), s.reason(0));
        assertThrows(MooncakeException.class, () -> a.warmup(TcpTestKit.peer(port, 2)));
        submitAndAwait(a, peerB, FakeSubmission.of(Opcode.WRITE, memA.address, memB.address, 4096));
    }

    @Test
    void shouldKeepTheConnectionOnAbortAndLeaveAStalledPeerToTheStallWatchdog() throws Exception {
        AtomicInteger firstClosed = new AtomicInteger();
        FakeContext ctx = new FakeContext(config("MC_TCP_LANES_PER_PEER", "1", TcpSettings.STALL_TIMEOUT, "3"));
        try (TcpTransport t = new TcpTransport(ctx);
                RawServer server =
                new RawServer(
                        (n, ch) -> {
                            if (n == 0) {
                                // never answers; waits to see the initiator hang up
                                ByteBuffer sink = ByteBuffer.allocate(4096);
                                while (ch.read(sink) >= 0) {
                                    sink.clear();
                                }
                                firstClosed.incrementAndGet();
                                return;
                            }
                            serveReads(ch);
                        })) {
            SegmentDescriptor peer = TcpTestKit.peer(server.port(), 2);
            long local = memA.address + 250 * MiB;
            FakeSubmission s = FakeSubmission.of(Opcode.READ, local, 0x10000, 4096);
            t.submit(peer, s);
            assertFalse(s.await(300), "nothing can answer this READ");
            s.endAll(TransferStatus.TIMEOUT, "deadline"); // what the engine does first
            t.abort(s);
            assertEquals(1, s.partsOutstanding(), "the part in flight is not reported by abort itself");
            assertEquals(0, firstClosed.get(), "abort does not close the connection");
            assertEquals(0, t.counters().get("lanes_killed"));

            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            while ((s.partsOutstanding() > 0 || firstClosed.get() == 0) && System.nanoTime() < until) {
                Thread.sleep(10);
            }
            assertEquals(0, s.partsOutstanding(), "the stall watchdog ended the part");
            assertEquals(1, firstClosed.get(), "the stalled connection was closed");
            assertEquals(1, t.counters().get("stalls"));

            fill(local, 4096, 0);
            submitAndAwait(t, peer, FakeSubmission.of(Opcode.READ, local, 0x10000, 4096));
            assertTrue(allEqual(local, 4096, 0x42));
            assertEquals(2, server.accepted.get(), "the one lane reconnected lazily");
        }
    }

    @Test
    void shouldFailStalledPeerWithoutAbort() throws Exception {
        FakeContext ctx = new FakeContext(config(TcpSettings.STALL_TIMEOUT, "0.5"));
        try (TcpTransport t = new TcpTransport(ctx);
                RawServer server =
                        new RawServer(
                                (n, ch) -> {
                                    ByteBuffer sink = ByteBuffer.allocate(4096);
                                    while (ch.read(sink) >= 0) {
                                        sink.clear();
                                    }
                                })) {
            FakeSubmission s = FakeSubmission.of(Opcode.READ, memA.address, 0x10000, 4096);
            t.submit(TcpTestKit.peer(server.port(), 2), s);
            assertTrue(s.await(5000));
            assertEquals(TransferStatus.FAILED, s.status(0));
            assertTrue(s.reason(0).contains("no progress"), s.reason(0));
            assertEquals(1, t.counters().get("stalls"));
        }
    }

    @Test
    void shouldEndInFlightWorkOnCloseAndRefuseAfter() throws Exception {
        FakeContext ctx = new FakeContext(config());
        TcpTransport t = new TcpTransport(ctx);
        try (RawServer server =
                new RawServer(
                        (n, ch) -> {
                            ByteBuffer sink = ByteBuffer.allocate(4096);
                            while (ch.read(sink) >= 0) {
                                sink.clear();
                            }
                        })) {
            FakeSubmission s = FakeSubmission.of(Opcode.READ, memA.address, 0x10000, 4096);
            SegmentDescriptor peer = TcpTestKit.peer(server.port(), 2);
            t.submit(peer, s);
            assertFalse(s.await(200));
            t.close();
            assertTrue(s.await(3000));
            assertNotEquals(TransferStatus.COMPLETED, s.status(0));
            t.close(); // idempotent
            FakeSubmission after = FakeSubmission.of(Opcode.READ, memA.address, 0x10000, 4096);
            t.submit(peer, after);
            assertTrue(after.await(1000));
            assertEquals(TransferStatus.CANCELED, after.status(0));
            // ended by the engine (deadline) before the closed transport saw it: its part is still
            // reported, else its memory stays pinned and can never be unregistered
            FakeSubmission late = FakeSubmission.of(Opcode.READ, memA.address, 0x10000, 4096);
            late.endAll(TransferStatus.TIMEOUT, "deadline");
            t.submit(peer, late);
            assertEquals(0, late.partsOutstanding(), "parts left unreported");
        }
        long alive =
                Thread.getAllStackTraces().keySet().stream()
                        .filter(th -> th.getName().contains("-" + t.dataPort()))
                        .filter(Thread::isAlive)
                        .count();
        assertEquals(0, alive, "threads of the closed transport");
    }

    @Test
    void shouldBeFoundByServiceLoader() {
        TransportProvider found = null;
        for (TransportProvider p : ServiceLoader.load(TransportProvider.class)) {
            if (p.protocol().equals("tcp")) {
                found = p;
            }
        }
        assertNotNull(found);
        assertNull(found.unavailabilityCause(EngineConfig.fromEnvironment()));
        assertEquals(5, found.priority());
    }

    /** Answers v2 READs with 0x42 bytes. */
    private static void serveReads(SocketChannel ch) throws IOException {
        while (true) {
            ByteBuffer h;
            try {
                h = readExactly(ch, 24);
            } catch (IOException e) {
                return;
            }
            int size = (int) h.getLong(0);
            ByteBuffer out = ByteBuffer.allocate(8 + size).order(ByteOrder.LITTLE_ENDIAN);
            out.putLong(TcpWire.statusFrame(0));
            while (out.hasRemaining()) {
                out.put((byte) 0x42);
            }
            out.flip();
            while (out.hasRemaining()) {
                ch.write(out);
            }
        }
    }

    /** A raw TCP server whose connections are handled by a test-supplied handler. */
    static final class RawServer implements AutoCloseable {
        interface Handler {
            void handle(int index, SocketChannel ch) throws IOException;
        }

        final ServerSocketChannel server;
        final AtomicInteger accepted = new AtomicInteger();
        final List<SocketChannel> channels = new CopyOnWriteArrayList<>();
        final Thread thread;

        RawServer(Handler handler) throws IOException {
            server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
            thread =
                    new Thread(
                            () -> {
                                while (true) {
                                    SocketChannel ch;
                                    try {
                                        ch = server.accept();
                                    } catch (IOException e) {
                                        return;
                                    }
                                    channels.add(ch);
                                    int n = accepted.getAndIncrement();
                                    Thread h =
                                            new Thread(
                                                    () -> {
                                                        try {
                                                            handler.handle(n, ch);
                                                        } catch (IOException e) {
                                                            // the test decides what matters
                                                        } finally {
                                                            closeQuietly(ch);
                                                        }
                                                    },
                                                    "raw-server-conn-" + n);
                                    h.setDaemon(true);
                                    h.start();
                                }
                            },
                            "raw-server");
            thread.setDaemon(true);
            thread.start();
        }

        int port() throws IOException {
            return ((InetSocketAddress) server.getLocalAddress()).getPort();
        }

        @Override
        public void close() throws Exception {
            server.close();
            for (SocketChannel ch : channels) {
                closeQuietly(ch);
            }
            thread.join(2000);
        }

        private static void closeQuietly(SocketChannel ch) {
            try {
                ch.close();
            } catch (IOException e) {
                // ignore
            }
        }
    }
}
