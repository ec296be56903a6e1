package io.mooncake4j.transport.tcp;

import static io.mooncake4j.transport.tcp.TcpTestKit.config;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Opcode;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.testkit.Bytes;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeContext;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeSubmission;
import io.mooncake4j.transport.tcp.TcpTestKit.Mapped;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The data server against idle, slow and churning raw clients (issues 7.2, 7.5, 8.2): bounded in count
 * and time, every byte to loopback. After each attack the server serves a verified request, and its
 * connections, busy threads and file descriptors are back to their baseline.
 */
@Tag("integration")
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class TcpServerLimitsIntegrationTest {
    private static final long MiB = 1 << 20;

    private FakeContext ctx;
    private TcpTransport target;
    private Mapped mem;
    private final List<Socket> clients = new ArrayList<>();

    private void start(String... settings) {
        ctx = new FakeContext(config(settings));
        target = new TcpTransport(ctx);
        mem = new Mapped(128 * MiB);
        ctx.memory.register(mem.address, mem.length, MemoryLocation.CPU);
    }

    @AfterEach
    void stop() throws IOException {
        for (Socket s : clients) {
            s.close();
        }
        if (target != null) {
            target.close();
        }
        if (mem != null) {
            mem.close();
        }
    }

    @Test
    void shouldServeANewPeerWhenIdleConnectionsFillTheCap() throws Exception {
        start("MC_TCP_MAX_SERVED_CONNECTIONS", "8");
        long fds = openFds();
        List<Socket> idle = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            idle.add(connect());
        }
        await(() -> counter("served_connections") == 8, "the 8 idle connections are served");
        assertVerifiedWriteAndRead(0);
        assertEquals(1, counter("evicted_connections"));
        assertEquals(-1, readWithin(idle.get(0), 5000), "the connection idle the longest makes room");
        for (Socket s : idle) {
            s.close();
        }
        assertBackToBaseline(fds);
    }

    @Test
    void shouldCloseIdleAndHeaderTricklingConnectionsAfterTheIdleTimeout() throws Exception {
        start("MC_TCP_IDLE_TIMEOUT", "1");
        long fds = openFds();
        List<Socket> idle = new ArrayList<>();
        List<Socket> trickling = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            idle.add(connect());
            trickling.add(connect());
        }
        // a header one byte per 300 ms (24 bytes would take 7 s)
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(8);
        int open = trickling.size();
        while (open > 0 && System.nanoTime() < end) {
            open = 0;
            for (Socket s : trickling) {
                open += trySend(s, 1) ? 1 : 0;
            }
            TimeUnit.MILLISECONDS.sleep(300);
        }
        for (Socket s : idle) {
            assertEquals(-1, readWithin(s, 5000), "an idle connection is closed");
        }
        for (Socket s : trickling) {
            assertEquals(-1, readWithin(s, 5000), "a connection trickling a header is closed");
        }
        assertEquals(20, counter("idle_timeouts"));
        for (Socket s : clients) {
            s.close();
        }
        assertBackToBaseline(fds);
    }

    @Test
    void shouldCloseSlowRequestsAtTheirDeadlineAndReleaseTheirPins() throws Exception {
        start("MC_TCP_REQUEST_TIMEOUT", "1", "MC_TCP_STALL_TIMEOUT", "10");
        long fds = openFds();
        List<Socket> slow = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            Socket s = connect();
            ByteBuffer header = ByteBuffer.allocate(TcpWire.HEADER_BYTES + 100).order(ByteOrder.LITTLE_ENDIAN);
            TcpWire.putHeader(header, 0, 60_000, mem.address + i * 60_000L, TcpWire.OP_WRITE, true);
            s.getOutputStream().write(header.array());
            slow.add(s);
        }
        await(() -> ctx.memory.outstanding.get() == 20, "every slow request holds its pin");
        // one byte per 200 ms on each: inside every stall window, far from the whole payload
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(8);
        int open = slow.size();
        while (open > 0 && System.nanoTime() < end) {
            open = 0;
            for (Socket s : slow) {
                open += trySend(s, 1) ? 1 : 0;
            }
            TimeUnit.MILLISECONDS.sleep(200);
        }
        for (Socket s : slow) {
            assertEquals(-1, readWithin(s, 5000), "a slow request is closed at its deadline");
        }
        assertEquals(20, counter("request_timeouts"));
        await(() -> ctx.memory.outstanding.get() == 0, "the slow requests' pins are released");
        for (Socket s : clients) {
            s.close();
        }
        assertBackToBaseline(fds);
    }

    @Test
    void shouldServe2000ConnectionPerRequestWritesWithBytesVerifiedAndStagingBounded() throws Exception {
        start();
        long fds = openFds();
        long direct0 = directMemoryUsed();
        SplittableRandom rnd = new SplittableRandom(7);
        for (int i = 0; i < 2000; i++) {
            int size = 1 + rnd.nextInt(64 << 10);
            long offset = (long) i * (64 << 10);
            byte[] payload = randomBytes(rnd, size);
            try (Socket s = new Socket()) {
                s.setTcpNoDelay(true);
                s.setSoTimeout(10_000);
                s.connect(new InetSocketAddress("127.0.0.1", target.dataPort()));
                writeRequest(s.getOutputStream(), TcpWire.OP_WRITE, offset, size, payload);
                assertEquals(TcpWire.STATUS_OK, readStatus(s.getInputStream()), "request " + i);
            }
            assertArrayEquals(payload, memory(offset, size), "bytes of request " + i);
        }
        assertEquals(2000, counter("served_requests"));
        long bound = (long) TcpServer.MAX_IDLE_STAGING * StagingPool.SET_BYTES;
        assertTrue(counter("staging_bytes") <= bound, "staging memory kept for reuse is bounded");
        long directGrowth = directMemoryUsed() - direct0;
        assertTrue(directGrowth < 16 * MiB,
                "2000 connections grew direct buffers by " + directGrowth + " bytes (freed only at a GC)");
        assertBackToBaseline(fds);
    }

    @Test
    void shouldLetOurInitiatorReconnectAfterTheTargetClosedItsIdleLanes() throws Exception {
        start("MC_TCP_IDLE_TIMEOUT", "0.5");
        FakeContext initiatorContext = new FakeContext(config());
        try (TcpTransport initiator = new TcpTransport(initiatorContext);
                Mapped local = new Mapped(4 * MiB)) {
            initiatorContext.memory.register(local.address, local.length, MemoryLocation.CPU);
            SegmentDescriptor peer = TcpTestKit.describe(target);
            for (int round = 0; round < 3; round++) {
                TcpTestKit.fillRandom(local.address, local.length, round);
                FakeSubmission w = FakeSubmission.of(Opcode.WRITE, local.address, mem.address, local.length);
                initiator.submit(peer, w);
                assertTrue(w.await(20_000), "round " + round + " did not end");
                assertEquals("", w.failures(), "round " + round);
                assertArrayEquals(Bytes.at(local.address, (int) local.length), memory(0, (int) local.length));
                long closed = counter("idle_timeouts");
                await(() -> counter("idle_timeouts") > closed, "the target closes the idle lanes");
                await(() -> counter("served_connections_open") == 0, "the lanes' connections ended");
            }
        }
    }

    // ---------------------------------------------------------------- helpers

    private Socket connect() throws IOException {
        Socket s = new Socket();
        s.setTcpNoDelay(true);
        s.connect(new InetSocketAddress("127.0.0.1", target.dataPort()), 5000);
        clients.add(s);
        return s;
    }

    /** A WRITE of random bytes then a READ of them back, on a new connection. */
    private void assertVerifiedWriteAndRead(long offset) throws IOException {
        byte[] payload = randomBytes(new SplittableRandom(offset + 1), 4096);
        try (Socket s = new Socket()) {
            s.setSoTimeout(10_000);
            s.connect(new InetSocketAddress("127.0.0.1", target.dataPort()), 5000);
            writeRequest(s.getOutputStream(), TcpWire.OP_WRITE, offset, payload.length, payload);
            assertEquals(TcpWire.STATUS_OK, readStatus(s.getInputStream()));
            writeRequest(s.getOutputStream(), TcpWire.OP_READ, offset, payload.length, null);
            assertEquals(TcpWire.STATUS_OK, readStatus(s.getInputStream()));
            assertArrayEquals(payload, s.getInputStream().readNBytes(payload.length));
        }
        assertArrayEquals(payload, memory(offset, payload.length));
    }

    private void writeRequest(OutputStream out, int op, long offset, int size, byte[] payload) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(TcpWire.HEADER_BYTES + (payload == null ? 0 : size))
                .order(ByteOrder.LITTLE_ENDIAN);
        TcpWire.putHeader(b, 0, size, mem.address + offset, op, true);
        if (payload != null) {
            b.position(TcpWire.HEADER_BYTES);
            b.put(payload);
        }
        out.write(b.array());
        out.flush();
    }

    private static int readStatus(InputStream in) throws IOException {
        byte[] frame = in.readNBytes(TcpWire.STATUS_BYTES);
        assertEquals(TcpWire.STATUS_BYTES, frame.length, "the target closed the connection before the status");
        long f = ByteBuffer.wrap(frame).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertTrue(TcpWire.isStatusFrame(f), "not a status frame: " + Long.toHexString(f));
        return TcpWire.statusCode(f);
    }

    private byte[] memory(long offset, int size) {
        return Bytes.at(mem.address + offset, size);
    }

    private static byte[] randomBytes(SplittableRandom rnd, int size) {
        byte[] b = new byte[size];
        for (int i = 0; i < size; i++) {
            b[i] = (byte) rnd.nextInt();
        }
        return b;
    }

    private static boolean trySend(Socket s, int n) {
        try {
            s.getOutputStream().write(new byte[n]);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** -1 when the target closed the connection within {@code millis}, else the byte read (or -2 on timeout). */
    private static int readWithin(Socket s, int millis) throws IOException {
        s.setSoTimeout(millis);
        try {
            return s.getInputStream().read();
        } catch (SocketTimeoutException e) {
            return -2;
        } catch (IOException e) {
            return -1; // reset: closed as well
        }
    }

    private long counter(String key) {
        return target.counters().getOrDefault(key, -1L);
    }

    private void assertBackToBaseline(long fds) throws Exception {
        await(() -> counter("served_connections_open") == 0, "every served connection ended");
        await(() -> counter("serving_threads") == 1, "no thread serves a connection (only the acceptor is busy)");
        await(() -> openFds() <= fds, "file descriptors back to " + fds);
        assertVerifiedWriteAndRead(100 * MiB);
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < end, "timed out waiting until " + what);
            TimeUnit.MILLISECONDS.sleep(20);
        }
    }

    private static long openFds() {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static long directMemoryUsed() {
        for (BufferPoolMXBean pool : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
            if (pool.getName().equals("direct")) {
                return pool.getMemoryUsed();
            }
        }
        throw new IllegalStateException("no direct buffer pool bean");
    }
}
