package io.mooncake4j.internal.handshake;

import static io.mooncake4j.internal.handshake.HandshakeTestSupport.LOOPBACK;
import static io.mooncake4j.internal.handshake.HandshakeTestSupport.freePort;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

@Tag("integration")
class HandshakeClientTest {
    private static final int MAX = HandshakeCodec.DEFAULT_MAX_FRAME_LENGTH;
    private final List<AutoCloseable> resources = new ArrayList<>();

    @AfterEach
    void cleanUp() throws Exception {
        for (AutoCloseable c : resources) {
            c.close();
        }
    }

    /** A raw server that runs {@code behaviour} on each accepted connection, one at a time. */
    private int rawServer(ConnectionBehaviour behaviour) throws IOException {
        ServerSocket ss = new ServerSocket(0, 50, InetAddress.getByName(LOOPBACK));
        resources.add(ss);
        List<Socket> accepted = new ArrayList<>();
        resources.add(
                () -> {
                    synchronized (accepted) {
                        for (Socket s : accepted) {
                            s.close();
                        }
                    }
                });
        Thread t =
                new Thread(
                        () -> {
                            while (!ss.isClosed()) {
                                try {
                                    Socket s = ss.accept();
                                    synchronized (accepted) {
                                        accepted.add(s);
                                    }
                                    behaviour.run(s);
                                } catch (IOException e) {
                                    return;
                                }
                            }
                        });
        t.setDaemon(true);
        t.start();
        return ss.getLocalPort();
    }

    @FunctionalInterface
    interface ConnectionBehaviour {
        void run(Socket s) throws IOException;
    }

    private static MooncakeException callFails(int port, Duration timeout) {
        return assertThrows(
                MooncakeException.class,
                () ->
                        HandshakeClient.call(
                                new InetSocketAddress(LOOPBACK, port),
                                HandshakeFrame.METADATA,
                                new JsonObject(),
                                timeout,
                                MAX));
    }

    @Test
    @Timeout(5)
    void shouldReportSegmentNotFoundQuicklyWhenNothingListens() throws IOException {
        int port = freePort();
        long start = System.nanoTime();
        MooncakeException e = callFails(port, Duration.ofSeconds(5));
        assertEquals(ErrorCode.SEGMENT_NOT_FOUND, e.code());
        assertTrue(e.getMessage().contains("127.0.0.1:" + port), e.getMessage());
        assertTrue(e.getMessage().contains("running"), e.getMessage());
        assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) < 1000);
    }

    @Test
    @Timeout(5)
    void shouldTimeOutWhenThePeerNeverReplies() throws IOException {
        int port = rawServer(s -> {}); // accepts, reads nothing, says nothing
        long start = System.nanoTime();
        MooncakeException e = callFails(port, Duration.ofMillis(300));
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertEquals(ErrorCode.METADATA, e.code());
        assertTrue(
                e.getMessage().contains("timed out after 300 ms while waiting for the reply"),
                e.getMessage());
        assertTrue(millis >= 250 && millis < 1500, "took " + millis + " ms");
    }

    @Test
    @Timeout(5)
    void shouldTimeOutWhenThePeerTricklesItsReply() throws IOException {
        int port =
                rawServer(
                        s -> {
                            try {
                                s.getOutputStream().write(HandshakeTestSupport.le64(50));
                                for (int i = 0; i < 50; i++) {
                                    s.getOutputStream().write(i == 0 ? 1 : ' ');
                                    Thread.sleep(20);
                                }
                            } catch (InterruptedException | IOException e) {
                                // client gone
                            }
                        });
        long start = System.nanoTime();
        MooncakeException e = callFails(port, Duration.ofMillis(300));
        assertEquals(ErrorCode.METADATA, e.code());
        assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) < 2000);
    }

    @Test
    @Timeout(5)
    void shouldFailWhenThePeerClosesWithoutReplying() throws IOException {
        int port = rawServer(Socket::close);
        MooncakeException e = callFails(port, Duration.ofSeconds(2));
        assertEquals(ErrorCode.METADATA, e.code());
    }

    @Test
    @Timeout(5)
    void shouldFailOnAReplyOfAnotherType() throws IOException {
        int port =
                rawServer(
                        s -> {
                            HandshakeCodec.read(s.getInputStream(), MAX);
                            s.getOutputStream()
                                    .write(
                                            HandshakeCodec.encode(
                                                    HandshakeFrame.of(
                                                            HandshakeFrame.PROBE,
                                                            new JsonObject())));
                        });
        MooncakeException e = callFails(port, Duration.ofSeconds(2));
        assertEquals(ErrorCode.METADATA, e.code());
        assertTrue(e.getMessage().contains("Probe"), e.getMessage());
    }

    /** A server that answers every request with {@code reply}, as another kind of service would. */
    private int answeringServer(String reply) throws IOException {
        return rawServer(
                s -> {
                    InputStream in = s.getInputStream();
                    in.read(new byte[64]);
                    s.getOutputStream().write(reply.getBytes(StandardCharsets.US_ASCII));
                });
    }

    /** The message of the METADATA failure that a call to {@code port} ends with. */
    private static String metadataFailure(int port) {
        MooncakeException e = callFails(port, Duration.ofSeconds(2));
        assertEquals(ErrorCode.METADATA, e.code());
        return e.getMessage();
    }

    @Test
    @Timeout(5)
    void shouldFailOnAReplyThatIsNotAFrame() throws IOException {
        String message = metadataFailure(answeringServer("SSH-2.0-OpenSSH_9.2p1\r\n"));
        assertTrue(message.contains("malformed reply"), message);
    }

    @Test
    @Timeout(5)
    void shouldSayThePeerIsAnHttpServerWhenTheReplyIsHttp() throws IOException {
        int port = answeringServer("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        String message = metadataFailure(port);
        assertTrue(message.contains("the peer at " + LOOPBACK + ":" + port + " answered with HTTP"), message);
        assertTrue(message.contains("MC_MIN_RPC_PORT..MC_MAX_RPC_PORT"), message);
    }

    @Test
    @Timeout(5)
    void shouldAcceptALegacyReplyOnlyForConnection() throws IOException {
        JsonObject legacyBody = new JsonObject();
        legacyBody.addProperty("reply_msg", "");
        List<Integer> requestTypes = new java.util.concurrent.CopyOnWriteArrayList<>();
        int port =
                rawServer(
                        s -> {
                            requestTypes.add(HandshakeCodec.read(s.getInputStream(), MAX).type());
                            s.getOutputStream()
                                    .write(
                                            HandshakeCodec.encode(
                                                    HandshakeFrame.legacy(legacyBody)));
                            s.getOutputStream().flush();
                        });
        JsonObject reply =
                HandshakeClient.call(
                        new InetSocketAddress(LOOPBACK, port),
                        HandshakeFrame.CONNECTION,
                        new JsonObject(),
                        Duration.ofSeconds(2),
                        MAX);
        assertEquals(legacyBody, reply);
        assertEquals(ErrorCode.METADATA, callFails(port, Duration.ofSeconds(2)).code());
        assertEquals(List.of(HandshakeFrame.CONNECTION, HandshakeFrame.METADATA), requestTypes);
    }

    @Test
    @Timeout(5)
    void shouldRefuseARequestOverTheLimitBeforeConnecting() throws IOException {
        int port = freePort();
        JsonObject big = new JsonObject();
        big.addProperty("pad", "x".repeat(200));
        MooncakeException e =
                assertThrows(
                        MooncakeException.class,
                        () ->
                                HandshakeClient.call(
                                        new InetSocketAddress(LOOPBACK, port),
                                        HandshakeFrame.NOTIFY,
                                        big,
                                        Duration.ofSeconds(1),
                                        100));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    }

    @Test
    @Timeout(5)
    void shouldRejectBadArguments() {
        InetSocketAddress a = new InetSocketAddress(LOOPBACK, 1);
        assertEquals(
                ErrorCode.INVALID_ARGUMENT,
                assertThrows(
                                MooncakeException.class,
                                () ->
                                        HandshakeClient.call(
                                                a, 4, new JsonObject(), Duration.ofSeconds(1), MAX))
                        .code());
        assertEquals(
                ErrorCode.INVALID_ARGUMENT,
                assertThrows(
                                MooncakeException.class,
                                () ->
                                        HandshakeClient.call(
                                                a, 1, new JsonObject(), Duration.ZERO, MAX))
                        .code());
    }
}
