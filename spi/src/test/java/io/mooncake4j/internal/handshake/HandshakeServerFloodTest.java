package io.mooncake4j.internal.handshake;

import static io.mooncake4j.internal.handshake.HandshakeTestSupport.LOOPBACK;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.awaitClosedByPeer;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.connect;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.connectFrom;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.descriptorJson;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.eventually;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.le64;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.receive;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.send;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;

import io.mooncake4j.MooncakeException;
import io.mooncake4j.testkit.ResourceCount;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/** Floods and crafted frames from raw loopback clients (issue #7, items 3, 6 and 8). */
@Tag("integration")
class HandshakeServerFloodTest {
    private static final Duration IO_TIMEOUT = Duration.ofSeconds(5); // the engine's default
    private static final Duration CALL_TIMEOUT = Duration.ofSeconds(5);
    private static final int MAX = HandshakeCodec.DEFAULT_MAX_FRAME_LENGTH;
    private static final String SELF = "127.0.0.1:15999";
    private static final String OTHER_HOST = "127.0.0.2";
    private static final int FLOOD = 500;

    private final HandshakeServerTest.TestHandler handler = new HandshakeServerTest.TestHandler();
    private final List<Socket> flood = new ArrayList<>();
    private final ConcurrentLinkedQueue<Throwable> uncaught = new ConcurrentLinkedQueue<>();
    private Thread.UncaughtExceptionHandler previousHandler;
    private HandshakeServer server;

    @BeforeEach
    void recordDyingThreads() {
        previousHandler = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((t, e) -> uncaught.add(e));
    }

    @AfterEach
    void stop() throws IOException {
        Thread.setDefaultUncaughtExceptionHandler(previousHandler);
        for (Socket s : flood) {
            s.close();
        }
        if (server != null) {
            server.close();
        }
    }

    private void start(HandshakeLimits limits) {
        server = HandshakeServer.start(LOOPBACK, 0, 0, limits, handler);
    }

    private JsonObject metadata() {
        return HandshakeClient.call(
                new InetSocketAddress(LOOPBACK, server.port()),
                HandshakeFrame.METADATA,
                new JsonObject(),
                CALL_TIMEOUT,
                MAX);
    }

    private void openSilent(String from, int n) throws IOException, InterruptedException {
        long before = server.connectionsAccepted();
        for (int i = 0; i < n; i++) {
            flood.add(from == null ? connect(server.port()) : connectFrom(from, server.port()));
        }
        eventually(
                () -> server.connectionsAccepted() == before + n,
                Duration.ofSeconds(20),
                n + " connections accepted");
    }

    /** Limits under which only the limit under test can close a connection within 30 s. */
    private static HandshakeLimits patient() {
        return HandshakeLimits.of(MAX, Duration.ofSeconds(30))
                .withFirstFrameTimeout(Duration.ofSeconds(30));
    }

    private static void assertProbeAnswered(Socket s) throws IOException {
        send(s, HandshakeFrame.of(HandshakeFrame.PROBE, new JsonObject()));
        assertEquals(HandshakeMessages.probeOk(), receive(s).body());
    }

    private String handlerThreads() {
        return "mooncake4j-handshake-" + server.port() + "-handler-";
    }

    private void assertFloodLeavesNothingBehind(long fdsBefore) throws Exception {
        for (Socket s : flood) {
            s.close();
        }
        flood.clear();
        eventually(
                () -> server.activeConnections() == 0, Duration.ofSeconds(10), "every flood closed");
        // A little slack for what the JVM opens lazily; 500 leaked sockets would be far over.
        eventually(
                () -> ResourceCount.openFileDescriptors() <= fdsBefore + 8,
                Duration.ofSeconds(10),
                "file descriptors back to " + fdsBefore);
        assertEquals(descriptorJson(SELF), metadata());
    }

    @Test
    @Timeout(60)
    void shouldAnswerOthersWhileOneHostHolds500SilentConnections() throws Exception {
        server = HandshakeServer.start(LOOPBACK, 0, 0, MAX, IO_TIMEOUT, handler); // defaults
        long fds = ResourceCount.openFileDescriptors();
        openSilent(OTHER_HOST, FLOOD);
        long start = System.nanoTime();
        assertEquals(descriptorJson(SELF), metadata()); // from 127.0.0.1, during the flood
        System.out.printf(
                "Metadata answered in %.1f ms while %d silent connections were open%n",
                (System.nanoTime() - start) / 1e6, FLOOD);
        int cap = HandshakeLimits.DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
        assertEquals(FLOOD - cap, server.connectionsOverAddressLimit());
        assertTrue(
                ResourceCount.liveThreads(handlerThreads()) <= 2,
                "silent connections took handler threads");
        assertFloodLeavesNothingBehind(fds);
    }

    @Test
    @Timeout(60)
    void shouldAnswerEveryCallWhileASilentFloodKeepsReopening() throws Exception {
        server = HandshakeServer.start(LOOPBACK, 0, 0, MAX, IO_TIMEOUT, handler); // defaults
        long fds = ResourceCount.openFileDescriptors();
        openSilent(OTHER_HOST, FLOOD);
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger reopened = new AtomicInteger();
        Thread flooder =
                new Thread(
                        () -> {
                            // Keeps 500 open: each new connection replaces the oldest.
                            for (int i = 0; i < 5_000 && !stop.get(); i++) {
                                try {
                                    Socket s = connectFrom(OTHER_HOST, server.port());
                                    synchronized (flood) {
                                        flood.add(s);
                                        flood.remove(0).close();
                                    }
                                    reopened.incrementAndGet();
                                } catch (IOException e) {
                                    return;
                                }
                            }
                        },
                        "flooder");
        flooder.setDaemon(true);
        flooder.start();
        try {
            long worst = 0;
            for (int i = 0; i < 20; i++) {
                long start = System.nanoTime();
                assertEquals(descriptorJson(SELF), metadata());
                worst = Math.max(worst, System.nanoTime() - start);
            }
            System.out.printf(
                    "20 Metadata calls, slowest %.1f ms, while the flood re-opened %d connections%n",
                    worst / 1e6, reopened.get());
        } finally {
            stop.set(true);
            flooder.join(10_000);
        }
        assertTrue(reopened.get() > 0, "the flood did not run");
        assertFloodLeavesNothingBehind(fds);
    }

    @Test
    @Timeout(60)
    void shouldAnswerAHostWhileItsOwnSilentFloodIsHeld() throws Exception {
        start(HandshakeLimits.of(MAX, IO_TIMEOUT).withMaxConnectionsPerAddress(4 * FLOOD));
        long fds = ResourceCount.openFileDescriptors();
        openSilent(null, FLOOD);
        long start = System.nanoTime();
        assertEquals(descriptorJson(SELF), metadata()); // same address as the flood
        System.out.printf(
                "Metadata answered in %.1f ms while the same host held %d silent connections%n",
                (System.nanoTime() - start) / 1e6, FLOOD);
        assertTrue(
                ResourceCount.liveThreads(handlerThreads()) <= 2,
                "silent connections took handler threads");
        assertEquals(0, server.connectionsRejected());
        assertFloodLeavesNothingBehind(fds);
    }

    @Test
    @Timeout(20)
    void shouldCloseASilentConnectionAfterTheFirstFrameTimeout() throws Exception {
        start(
                HandshakeLimits.of(MAX, Duration.ofSeconds(30))
                        .withFirstFrameTimeout(Duration.ofMillis(200)));
        try (Socket silent = connect(server.port())) {
            awaitClosedByPeer(silent, Duration.ofSeconds(5)); // not the 30 s I/O timeout
        }
        eventually(
                () -> server.silentConnectionsClosed() == 1,
                Duration.ofSeconds(2),
                "silent connection counted");
        assertEquals(0, server.framesRejected(), "a silent connection is not a bad frame");
        try (Socket prompt = connect(server.port())) {
            assertProbeAnswered(prompt);
        }
    }

    @Test
    @Timeout(20)
    void shouldCloseConnectionsOverThePerAddressLimitAtOnce() throws Exception {
        start(patient().withMaxConnectionsPerAddress(4));
        openSilent(null, 4);
        try (Socket fifth = connect(server.port())) {
            awaitClosedByPeer(fifth, Duration.ofSeconds(5)); // not the 30 s first-frame timeout
        }
        assertEquals(1, server.connectionsOverAddressLimit());
        try (Socket other = connectFrom(OTHER_HOST, server.port())) {
            assertProbeAnswered(other);
        }
        for (Socket s : flood) {
            s.close();
        }
        flood.clear();
        eventually(
                () -> server.activeConnections() == 0, Duration.ofSeconds(5), "places released");
        assertEquals(descriptorJson(SELF), metadata());
    }

    @Test
    @Timeout(20)
    void shouldCloseTheOldestSilentConnectionWhenTooManyWait() throws Exception {
        start(patient().withMaxSilentConnections(3));
        openSilent(null, 3);
        try (Socket newest = connect(server.port())) {
            awaitClosedByPeer(flood.get(0), Duration.ofSeconds(5));
            assertProbeAnswered(newest);
        }
        assertEquals(1, server.silentConnectionsClosed());
    }

    /** {@code {"a":{"a":...{}...}}}, {@code depth} levels, as a Notify frame with no name. */
    private static byte[] nestedNotify(int depth) {
        ByteArrayOutputStream json = new ByteArrayOutputStream(6 * depth + 16);
        for (int i = 0; i < depth; i++) {
            json.writeBytes("{\"a\":".getBytes(StandardCharsets.US_ASCII));
        }
        json.writeBytes("{}".getBytes(StandardCharsets.US_ASCII));
        for (int i = 0; i < depth; i++) {
            json.write('}');
        }
        byte[] j = json.toByteArray();
        ByteArrayOutputStream frame = new ByteArrayOutputStream(j.length + 9);
        frame.writeBytes(le64(1 + j.length));
        frame.write(HandshakeFrame.NOTIFY);
        frame.writeBytes(j);
        return frame.toByteArray();
    }

    @Test
    @Timeout(30)
    void shouldRejectDeeplyNestedJsonWithoutOverflowingTheStack() throws Exception {
        server = HandshakeServer.start(LOOPBACK, 0, 0, MAX, IO_TIMEOUT, handler);
        for (int i = 0; i < 3; i++) {
            try (Socket s = connect(server.port())) {
                OutputStream out = s.getOutputStream();
                out.write(nestedNotify(100_000));
                out.flush();
                awaitClosedByPeer(s, Duration.ofSeconds(10));
            }
        }
        eventually(
                () -> server.framesRejected() == 3,
                Duration.ofSeconds(5),
                "3 frames rejected as malformed");
        assertEquals(0, server.handlerFailures(), "the handler never saw them");
        assertTrue(uncaught.isEmpty(), "a thread died: " + uncaught);
        assertEquals(descriptorJson(SELF), metadata());
    }

    @Test
    @Timeout(20)
    void shouldKeepHandlerThreadsAliveWhenTheHandlerThrowsAnError() throws Exception {
        server = HandshakeServer.start(LOOPBACK, 0, 0, MAX, IO_TIMEOUT, handler);
        handler.metadataOverride =
                request -> {
                    throw new StackOverflowError("crafted");
                };
        for (int i = 0; i < 3; i++) {
            assertThrows(MooncakeException.class, this::metadata);
        }
        eventually(
                () -> server.handlerFailures() == 3,
                Duration.ofSeconds(2),
                "3 handler failures counted");
        TimeUnit.MILLISECONDS.sleep(100); // a dying thread reports after its task ends
        assertTrue(uncaught.isEmpty(), "a handler thread died: " + uncaught);
        handler.metadataOverride = null;
        assertEquals(descriptorJson(SELF), metadata());
    }
}
