package io.mooncake4j.internal.handshake;

import static io.mooncake4j.internal.handshake.HandshakeTestSupport.LOOPBACK;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.awaitClosedByPeer;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.connect;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.descriptorJson;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.eventually;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.le64;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.receive;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.send;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

@Tag("integration")
class HandshakeServerTest {
    private static final Duration IO_TIMEOUT = Duration.ofMillis(1000);
    private static final Duration CALL_TIMEOUT = Duration.ofSeconds(5);
    private static final int MAX = HandshakeCodec.DEFAULT_MAX_FRAME_LENGTH;
    private static final String SELF = "127.0.0.1:15999";

    private final TestHandler handler = new TestHandler();
    private HandshakeServer server;

    /** Answers like an engine would; counts how many requests run at once. */
    static final class TestHandler implements HandshakeHandler {
        final AtomicInteger running = new AtomicInteger();
        final AtomicInteger maxRunning = new AtomicInteger();
        final ConcurrentLinkedQueue<HandshakeMessages.Notify> notifies =
                new ConcurrentLinkedQueue<>();
        final ConcurrentLinkedQueue<Integer> types = new ConcurrentLinkedQueue<>();
        volatile long delayMillis;
        volatile CountDownLatch gate;
        volatile Function<JsonObject, JsonObject> metadataOverride;

        @Override
        public JsonObject handle(int type, JsonObject request, InetSocketAddress remote, String peer) {
            int now = running.incrementAndGet();
            maxRunning.accumulateAndGet(now, Math::max);
            try {
                types.add(type);
                if (delayMillis > 0) {
                    Thread.sleep(delayMillis);
                }
                CountDownLatch g = gate;
                if (g != null && !g.await(10, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("gate never opened");
                }
                switch (type) {
                    case HandshakeFrame.METADATA:
                        Function<JsonObject, JsonObject> o = metadataOverride;
                        return o != null ? o.apply(request) : descriptorJson(SELF);
                    case HandshakeFrame.NOTIFY:
                        notifies.add(HandshakeMessages.parseNotify(request));
                        return HandshakeMessages.notifyOk();
                    case HandshakeFrame.PROBE:
                        return HandshakeMessages.probeOk();
                    default:
                        JsonObject reply = new JsonObject();
                        reply.addProperty("local_nic_path", SELF + "@efa0");
                        reply.add("peer_nic_path", request.get("local_nic_path"));
                        reply.addProperty("reply_msg", "");
                        return reply;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted", e);
            } finally {
                running.decrementAndGet();
            }
        }
    }

    @BeforeEach
    void start() {
        server = HandshakeServer.start(LOOPBACK, 0, 0, MAX, IO_TIMEOUT, handler);
    }

    @AfterEach
    void stop() {
        CountDownLatch g = handler.gate;
        if (g != null) {
            g.countDown();
        }
        server.close();
    }

    private InetSocketAddress address() {
        return new InetSocketAddress(LOOPBACK, server.port());
    }

    private JsonObject call(int type, JsonObject request) {
        return HandshakeClient.call(address(), type, request, CALL_TIMEOUT, MAX);
    }

    private void assertServerStillServes() {
        assertTrue(
                HandshakeMessages.isProbeOk(call(HandshakeFrame.PROBE, HandshakeMessages.probe())));
        assertEquals(
                SELF, call(HandshakeFrame.METADATA, new JsonObject()).get("name").getAsString());
    }

    @Test
    @Timeout(10)
    void shouldAnswerEveryType() throws InterruptedException {
        assertEquals(
                descriptorJson(SELF),
                call(HandshakeFrame.METADATA, descriptorJson("10.0.0.9:15001")));
        assertEquals(
                HandshakeMessages.notifyOk(),
                call(HandshakeFrame.NOTIFY, HandshakeMessages.notify("peer:1", "done")));
        assertEquals(
                HandshakeMessages.probeOk(), call(HandshakeFrame.PROBE, HandshakeMessages.probe()));
        JsonObject conn = new JsonObject();
        conn.addProperty("local_nic_path", "10.0.0.9:15001@efa3");
        JsonObject reply = call(HandshakeFrame.CONNECTION, conn);
        assertEquals("10.0.0.9:15001@efa3", reply.get("peer_nic_path").getAsString());
        assertEquals("", HandshakeMessages.replyMessage(reply));
        assertEquals(
                List.of(new HandshakeMessages.Notify("peer:1", "done")),
                new ArrayList<>(handler.notifies));
        // Counted after the write, so the client may see the reply first.
        eventually(() -> server.framesServed() == 4, Duration.ofSeconds(2), "4 frames served");
        assertEquals(0, server.framesRejected());
    }

    @Test
    @Timeout(20)
    void shouldServe64PeersOpeningSegmentsAtTheSameMoment() throws Exception {
        int peers = 64;
        handler.delayMillis = 50; // long enough that serial service would show
        ExecutorService pool = Executors.newFixedThreadPool(peers);
        try {
            CountDownLatch ready = new CountDownLatch(peers);
            CountDownLatch go = new CountDownLatch(1);
            List<Future<JsonObject>> replies = new ArrayList<>();
            for (int i = 0; i < peers; i++) {
                String caller = "10.0.1." + i + ":15000";
                replies.add(
                        pool.submit(
                                () -> {
                                    ready.countDown();
                                    go.await();
                                    return HandshakeClient.call(
                                            address(),
                                            HandshakeFrame.METADATA,
                                            descriptorJson(caller),
                                            CALL_TIMEOUT,
                                            MAX);
                                }));
            }
            assertTrue(ready.await(5, TimeUnit.SECONDS));
            long start = System.nanoTime();
            go.countDown();
            for (Future<JsonObject> f : replies) {
                assertEquals(descriptorJson(SELF), f.get(15, TimeUnit.SECONDS));
            }
            long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            eventually(
                    () -> server.framesServed() == peers,
                    Duration.ofSeconds(2),
                    peers + " frames served");
            assertEquals(0, server.connectionsRejected());
            assertTrue(
                    handler.maxRunning.get() >= 8,
                    "served concurrently, at most " + handler.maxRunning.get() + " at once");
            assertTrue(millis < peers * 50L, "took " + millis + " ms: looks serial");
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    @Timeout(10)
    void shouldAnswerSeveralFramesOnOneConnection() throws IOException, InterruptedException {
        try (Socket s = connect(server.port())) {
            send(s, HandshakeFrame.of(HandshakeFrame.PROBE, HandshakeMessages.probe()));
            assertEquals(HandshakeMessages.probeOk(), receive(s).body());
            send(
                    s,
                    HandshakeFrame.of(
                            HandshakeFrame.NOTIFY, HandshakeMessages.notify("x:1", "one")));
            HandshakeFrame r = receive(s);
            assertEquals(HandshakeFrame.NOTIFY, r.type());
            assertEquals(HandshakeMessages.NOTIFY_OK_JSON, HandshakeCodec.toJson(r.body()));
            // Pipelined: three frames in one write, three replies in order.
            OutputStream out = s.getOutputStream();
            out.write(
                    HandshakeCodec.encode(
                            HandshakeFrame.of(HandshakeFrame.METADATA, new JsonObject())));
            out.write(
                    HandshakeCodec.encode(
                            HandshakeFrame.of(HandshakeFrame.PROBE, new JsonObject())));
            out.write(
                    HandshakeCodec.encode(
                            HandshakeFrame.of(
                                    HandshakeFrame.NOTIFY,
                                    HandshakeMessages.notify("x:1", "two"))));
            out.flush();
            assertEquals(HandshakeFrame.METADATA, receive(s).type());
            assertEquals(HandshakeFrame.PROBE, receive(s).type());
            assertEquals(HandshakeFrame.NOTIFY, receive(s).type());
        }
        eventually(() -> server.framesServed() == 5, Duration.ofSeconds(2), "5 frames served");
        assertEquals(2, handler.notifies.size());
    }

    @Test
    @Timeout(10)
    void shouldAnswerLegacyFrameWithLegacyConnectionReply() throws IOException {
        try (Socket s = connect(server.port())) {
            byte[] json = "{\"local_nic_path\":\"old:1@mlx5_0\"}".getBytes(StandardCharsets.UTF_8);
            s.getOutputStream().write(le64(json.length));
            s.getOutputStream().write(json);
            HandshakeFrame reply = receive(s);
            assertTrue(reply.isLegacy());
            assertEquals(HandshakeFrame.CONNECTION, reply.type());
            assertEquals("old:1@mlx5_0", reply.body().get("peer_nic_path").getAsString());
        }
        assertEquals(List.of(HandshakeFrame.CONNECTION), new ArrayList<>(handler.types));
    }

    private void assertRefused(byte[] bytes, String what) throws IOException, InterruptedException {
        long rejectedBefore = server.framesRejected();
        try (Socket s = connect(server.port())) {
            s.getOutputStream().write(bytes);
            s.getOutputStream().flush();
            Duration took = awaitClosedByPeer(s, Duration.ofSeconds(3));
            assertTrue(
                    took.toMillis() < IO_TIMEOUT.toMillis(), what + ": closed only after " + took);
        }
        eventually(
                () -> server.framesRejected() == rejectedBefore + 1,
                Duration.ofSeconds(2),
                what + " counted");
        assertServerStillServes();
    }

    private static byte[] frame(int typeByte, String json) {
        byte[] j = json.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[8 + 1 + j.length];
        System.arraycopy(le64(1 + j.length), 0, out, 0, 8);
        out[8] = (byte) typeByte;
        System.arraycopy(j, 0, out, 9, j.length);
        return out;
    }

    @Test
    @Timeout(20)
    void shouldCloseConnectionsThatSendMalformedFramesAndKeepServing() throws Exception {
        assertRefused(le64(2L << 20), "2 MiB length");
        assertRefused(le64(Long.MIN_VALUE), "2^63 length");
        assertRefused(le64(-1L), "2^64-1 length");
        assertRefused(le64(0), "length 0");
        assertRefused(frame(1, "{\"name\": "), "truncated JSON");
        assertRefused(frame(1, "not json"), "not JSON");
        assertRefused(frame(1, "[1,2,3]"), "a JSON array");
        assertRefused(frame(2, "\"hello\""), "a JSON string");
        assertRefused(frame(7, "{}"), "unknown type byte");
        assertRefused(
                "GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII),
                "an HTTP request");
        assertEquals(10, server.framesRejected());
        assertEquals(0, server.handlerFailures());
        assertTrue(
                handler.types.stream()
                        .allMatch(t -> t == HandshakeFrame.PROBE || t == HandshakeFrame.METADATA));
    }

    @Test
    @Timeout(10)
    void shouldServeOthersWhileAPeerStallsMidFrameThenCloseIt() throws Exception {
        try (Socket stalled = connect(server.port())) {
            stalled.getOutputStream().write(le64(100));
            stalled.getOutputStream().write(new byte[] {1, '{', '"'});
            stalled.getOutputStream().flush();
            long start = System.nanoTime();
            assertServerStillServes(); // during the stall
            assertTrue(System.nanoTime() - start < IO_TIMEOUT.toNanos(), "served during the stall");
            Duration closedAfter = awaitClosedByPeer(stalled, Duration.ofSeconds(3));
            assertTrue(
                    closedAfter.toMillis() < IO_TIMEOUT.toMillis() + 1000,
                    "closed after " + closedAfter);
        }
        eventually(() -> server.framesRejected() == 1, Duration.ofSeconds(2), "stall counted");
        assertServerStillServes();
    }

    @Test
    @Timeout(10)
    void shouldCutOffAPeerTricklingOneByteAtATime() throws Exception {
        try (Socket slow = connect(server.port())) {
            Thread trickler =
                    new Thread(
                            () -> {
                                try {
                                    OutputStream out = slow.getOutputStream();
                                    out.write(le64(1000));
                                    for (int i = 0; i < 60; i++) {
                                        out.write(i == 0 ? 1 : ' ');
                                        out.flush();
                                        Thread.sleep(50);
                                    }
                                } catch (IOException | InterruptedException e) {
                                    // the server closed it, as expected
                                }
                            });
            trickler.setDaemon(true);
            trickler.start();
            Thread.sleep(100);
            assertServerStillServes();
            // Bytes keep arriving every 50 ms, well inside any per-read timeout; the frame deadline
            // (IO_TIMEOUT after the first byte) still ends it.
            Duration closedAfter = awaitClosedByPeer(slow, Duration.ofSeconds(3));
            assertTrue(
                    closedAfter.toMillis() < IO_TIMEOUT.toMillis() + 500,
                    "closed after " + closedAfter);
            trickler.interrupt();
        }
        eventually(() -> server.framesRejected() == 1, Duration.ofSeconds(2), "trickle counted");
    }

    @Test
    @Timeout(10)
    void shouldCloseIdleConnectionsQuietly() throws Exception {
        try (Socket idle = connect(server.port())) {
            Duration closedAfter = awaitClosedByPeer(idle, Duration.ofSeconds(3));
            // A connection that never sent a byte gets the first-frame timeout, not IO_TIMEOUT.
            assertTrue(
                    closedAfter.toMillis()
                            >= HandshakeLimits.DEFAULT_FIRST_FRAME_TIMEOUT.toMillis() - 50,
                    "closed after " + closedAfter);
        }
        try (Socket reused = connect(server.port())) {
            send(reused, HandshakeFrame.of(HandshakeFrame.PROBE, new JsonObject()));
            receive(reused);
            awaitClosedByPeer(reused, Duration.ofSeconds(3));
        }
        assertEquals(0, server.framesRejected(), "an idle connection is not a bad frame");
        eventually(
                () -> server.activeConnections() == 0, Duration.ofSeconds(2), "no connection left");
    }

    @Test
    @Timeout(10)
    void shouldRefuseConnectionButCloseOtherTypesWhenTheHandlerFails() {
        handler.metadataOverride =
                request -> {
                    throw new MooncakeException(ErrorCode.METADATA, "engine is closing");
                };
        MooncakeException e =
                assertThrows(
                        MooncakeException.class,
                        () -> call(HandshakeFrame.METADATA, new JsonObject()));
        assertEquals(ErrorCode.METADATA, e.code());
        assertTrue(e.getMessage().contains("without replying"), e.getMessage());

        HandshakeHandler failing =
                (type, request, remote, peer) -> {
                    throw new IllegalStateException("no such NIC");
                };
        try (HandshakeServer other =
                HandshakeServer.start(LOOPBACK, 0, 0, MAX, IO_TIMEOUT, failing)) {
            JsonObject reply =
                    HandshakeClient.call(
                            new InetSocketAddress(LOOPBACK, other.port()),
                            HandshakeFrame.CONNECTION,
                            new JsonObject(),
                            CALL_TIMEOUT,
                            MAX);
            assertTrue(
                    HandshakeMessages.replyMessage(reply).contains("no such NIC"),
                    reply.toString());
            assertEquals(1, other.handlerFailures());
        }
        handler.metadataOverride = request -> null;
        assertThrows(
                MooncakeException.class, () -> call(HandshakeFrame.METADATA, new JsonObject()));
        assertEquals(2, server.handlerFailures());
        handler.metadataOverride = null;
        assertServerStillServes();
    }

    @Test
    @Timeout(10)
    void shouldNotSendARepliesLargerThanTheLimit() {
        try (HandshakeServer small =
                HandshakeServer.start(
                        LOOPBACK,
                        0,
                        0,
                        64,
                        IO_TIMEOUT,
                        (type, request, remote, peer) ->
                                descriptorJson("a-rather-long-segment-name:15000"))) {
            MooncakeException e =
                    assertThrows(
                            MooncakeException.class,
                            () ->
                                    HandshakeClient.call(
                                            new InetSocketAddress(LOOPBACK, small.port()),
                                            HandshakeFrame.METADATA,
                                            new JsonObject(),
                                            CALL_TIMEOUT,
                                            MAX));
            assertEquals(ErrorCode.METADATA, e.code());
            assertEquals(1, small.handlerFailures());
        }
    }

    @Test
    @Timeout(20)
    void shouldCloseExcessConnectionsAtOnceWhenSaturated() throws Exception {
        HandshakeServer small =
                HandshakeServer.start(
                        LOOPBACK,
                        0,
                        0,
                        HandshakeLimits.of(MAX, Duration.ofSeconds(5)).withHandlerThreads(2, 1),
                        handler);
        handler.gate = new CountDownLatch(1);
        List<Socket> sockets = new ArrayList<>();
        try {
            for (int i = 0; i < 2; i++) { // occupy both handler threads
                Socket s = connect(small.port());
                sockets.add(s);
                send(s, HandshakeFrame.of(HandshakeFrame.PROBE, new JsonObject()));
            }
            eventually(
                    () -> handler.running.get() == 2, Duration.ofSeconds(3), "both threads busy");
            Socket queued = connect(small.port());
            sockets.add(queued);
            send(queued, HandshakeFrame.of(HandshakeFrame.PROBE, new JsonObject()));
            eventually(
                    () -> small.connectionsAccepted() == 3,
                    Duration.ofSeconds(3),
                    "third accepted");
            try (Socket excess = connect(small.port())) {
                // A connection takes a place in the queue only once it has sent something.
                send(excess, HandshakeFrame.of(HandshakeFrame.PROBE, new JsonObject()));
                Duration closedAfter = awaitClosedByPeer(excess, Duration.ofSeconds(3));
                assertTrue(closedAfter.toMillis() < 1000, "rejected after " + closedAfter);
            }
            assertEquals(1, small.connectionsRejected());
            handler.gate.countDown();
            for (Socket s : sockets) {
                assertEquals(HandshakeMessages.probeOk(), receive(s).body());
            }
            assertEquals(
                    HandshakeMessages.probeOk(),
                    HandshakeClient.call(
                            new InetSocketAddress(LOOPBACK, small.port()),
                            HandshakeFrame.PROBE,
                            new JsonObject(),
                            CALL_TIMEOUT,
                            MAX));
        } finally {
            for (Socket s : sockets) {
                s.close();
            }
            small.close();
        }
    }

    @Test
    @Timeout(10)
    void shouldCloseIdempotentlyAndQuicklyWithStalledPeers() throws Exception {
        Socket stalled = connect(server.port());
        stalled.getOutputStream().write(le64(100));
        Socket idle = connect(server.port());
        eventually(
                () -> server.activeConnections() == 2,
                Duration.ofSeconds(2),
                "two connections open");
        int port = server.port();
        long start = System.nanoTime();
        server.close();
        assertTrue(
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) < 1000,
                "close took too long");
        server.close();
        assertTrue(server.isClosed());
        awaitClosedByPeer(stalled, Duration.ofSeconds(1));
        awaitClosedByPeer(idle, Duration.ofSeconds(1));
        stalled.close();
        idle.close();
        assertThrows(ConnectException.class, () -> connect(port).close());
        String prefix = "mooncake4j-handshake-" + port + "-";
        eventually(
                () ->
                        Thread.getAllStackTraces().keySet().stream()
                                .noneMatch(t -> t.getName().startsWith(prefix) && t.isAlive()),
                Duration.ofSeconds(2),
                "every server thread stopped");
        assertEquals(0, server.activeConnections());
    }

    @Test
    @Timeout(10)
    void shouldPickAFreePortInTheRange() throws IOException {
        try (ServerSocket taken =
                new ServerSocket(0, 50, java.net.InetAddress.getByName(LOOPBACK))) {
            int p = taken.getLocalPort();
            MooncakeException e =
                    assertThrows(
                            MooncakeException.class,
                            () -> HandshakeServer.start(LOOPBACK, p, p, MAX, IO_TIMEOUT, handler));
            assertEquals(ErrorCode.IO, e.code());
            assertTrue(e.getMessage().contains("MC_MIN_RPC_PORT"), e.getMessage());
            int low = Math.max(1024, p - 4);
            int high = Math.min(65535, p + 4);
            for (int i = 0; i < 5; i++) {
                try (HandshakeServer s =
                        HandshakeServer.start(LOOPBACK, low, high, MAX, IO_TIMEOUT, handler)) {
                    assertTrue(s.port() >= low && s.port() <= high, "port " + s.port());
                    assertNotEquals(p, s.port());
                }
            }
        }
    }

    @Test
    @Timeout(10)
    void shouldRejectBadRangesAndAddressesQuickly() {
        assertEquals(
                ErrorCode.CONFIGURATION,
                assertThrows(
                                MooncakeException.class,
                                () ->
                                        HandshakeServer.start(
                                                null, 17000, 15000, MAX, IO_TIMEOUT, handler))
                        .code());
        long start = System.nanoTime();
        // TEST-NET-1 is not a local address: bind fails for every port, so fail on the first.
        MooncakeException e =
                assertThrows(
                        MooncakeException.class,
                        () ->
                                HandshakeServer.start(
                                        "192.0.2.1", 15000, 17000, MAX, IO_TIMEOUT, handler));
        assertEquals(ErrorCode.IO, e.code());
        assertTrue(e.getMessage().contains("192.0.2.1"), e.getMessage());
        assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) < 2000);
        assertFalse(server.isClosed());
    }
}
