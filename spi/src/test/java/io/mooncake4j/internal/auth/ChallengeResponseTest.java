package io.mooncake4j.internal.auth;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.internal.handshake.HandshakeCodec;
import io.mooncake4j.internal.handshake.HandshakeFrame;
import io.mooncake4j.spi.PeerAuthenticator.Purpose;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The exchange over real loopback sockets, with raw clients and servers that cheat. */
@Timeout(30)
class ChallengeResponseTest {
    private static final Duration T = Duration.ofSeconds(5);
    private static final AuthSecret SECRET = AuthSecret.of("0123456789abcdef0123456789abcdef");
    private static final AuthSecret OTHER = AuthSecret.of("fedcba9876543210fedcba9876543210");

    private ServerSocket listener;
    /**
     * A thread per background side: the common pool has one thread on a 2-core host, so a relay and
     * the server behind it would wait for each other until the read timeout.
     */
    private final ExecutorService sides = Executors.newCachedThreadPool();

    @BeforeEach
    void listen() throws IOException {
        listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    }

    @AfterEach
    void close() throws IOException {
        listener.close();
        sides.shutdownNow();
    }

    private Socket connect() throws IOException {
        Socket s = new Socket(InetAddress.getLoopbackAddress(), listener.getLocalPort());
        s.setSoTimeout(5000);
        return s;
    }

    /** Accepts one connection and runs {@code side} on it in the background. */
    private <T> CompletableFuture<T> serveOnce(Function<Socket, T> side) {
        return CompletableFuture.supplyAsync(() -> {
            try (Socket s = listener.accept()) {
                return side.apply(s);
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }, sides);
    }

    private static MooncakeException failure(CompletableFuture<?> f) throws Exception {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof MooncakeException, String.valueOf(e.getCause()));
        return (MooncakeException) e.getCause();
    }

    @Test
    void shouldAuthenticateBothWaysAndLeaveTheStreamAtTheNextByteWhenSecretsMatch() throws Exception {
        ChallengeResponse server = new ChallengeResponse(SECRET, () -> "server:1");
        ChallengeResponse client = new ChallengeResponse(SECRET, () -> "10.1.2.3:15001");
        CompletableFuture<String> proved = serveOnce(s -> {
            String name = server.authenticateClient(s, Purpose.HANDSHAKE, T);
            try {
                return name + "/" + s.getInputStream().read();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        try (Socket s = connect()) {
            client.authenticateToServer(s, Purpose.HANDSHAKE, T);
            s.getOutputStream().write(42);
            assertEquals("10.1.2.3:15001/42", proved.get(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void shouldRefuseBothWaysWhenSecretsDiffer() throws Exception {
        ChallengeResponse server = new ChallengeResponse(SECRET, () -> "server:1");
        ChallengeResponse client = new ChallengeResponse(OTHER, () -> "client:2");
        CompletableFuture<String> serverSide = serveOnce(s -> server.authenticateClient(s, Purpose.HANDSHAKE, T));
        try (Socket s = connect()) {
            MooncakeException e = assertThrows(MooncakeException.class,
                    () -> client.authenticateToServer(s, Purpose.HANDSHAKE, T));
            assertEquals(ErrorCode.AUTHENTICATION, e.code());
            assertTrue(e.getMessage().contains("did not prove"), e.getMessage());
        }
        assertEquals(ErrorCode.AUTHENTICATION, failure(serverSide).code());
    }

    @Test
    void shouldRefuseAClientWhoseProofIsWrongAndSayRefused() throws Exception {
        ChallengeResponse server = new ChallengeResponse(SECRET, () -> "server:1");
        CompletableFuture<String> serverSide = serveOnce(s -> server.authenticateClient(s, Purpose.HANDSHAKE, T));
        try (Socket s = connect()) {
            s.getOutputStream().write(hello(Purpose.HANDSHAKE, new byte[32], "mallory:1"));
            DataInputStream in = new DataInputStream(s.getInputStream());
            in.readFully(new byte[ChallengeResponse.CHALLENGE_BYTES]);
            s.getOutputStream().write(new byte[32]); // a guess
            assertEquals(ChallengeResponse.REFUSED, in.read());
        }
        MooncakeException e = failure(serverSide);
        assertEquals(ErrorCode.AUTHENTICATION, e.code());
        assertTrue(e.getMessage().contains("mallory:1"), e.getMessage());
    }

    @Test
    void shouldRefuseAReplayedClientExchange() throws Exception {
        ChallengeResponse server = new ChallengeResponse(SECRET, () -> "server:1");
        ChallengeResponse client = new ChallengeResponse(SECRET, () -> "alice:1");
        // Record what a genuine client sends through a relay.
        ByteArrayOutputStream recorded = new ByteArrayOutputStream();
        try (ServerSocket real = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
            CompletableFuture<String> genuine = CompletableFuture.supplyAsync(() -> {
                try (Socket s = real.accept()) {
                    return server.authenticateClient(s, Purpose.HANDSHAKE, T);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            }, sides);
            CompletableFuture<Void> relay = serveOnce(s -> {
                try (Socket up = new Socket(InetAddress.getLoopbackAddress(), real.getLocalPort())) {
                    relay(s, up, recorded);
                    return null;
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            try (Socket s = connect()) {
                client.authenticateToServer(s, Purpose.HANDSHAKE, T);
            }
            assertEquals("alice:1", genuine.get(10, TimeUnit.SECONDS));
            relay.get(10, TimeUnit.SECONDS);
        }
        byte[] clientBytes = recorded.toByteArray();
        int helloLength = ChallengeResponse.HELLO_FIXED_BYTES + "alice:1".length();
        assertEquals(helloLength + ChallengeResponse.PROOF_BYTES, clientBytes.length);

        // Replay it to the same server: its new nonce makes the old proof worthless.
        CompletableFuture<String> replayed = serveOnce(s -> server.authenticateClient(s, Purpose.HANDSHAKE, T));
        try (Socket s = connect()) {
            s.getOutputStream().write(Arrays.copyOf(clientBytes, helloLength));
            DataInputStream in = new DataInputStream(s.getInputStream());
            in.readFully(new byte[ChallengeResponse.CHALLENGE_BYTES]);
            s.getOutputStream().write(Arrays.copyOfRange(clientBytes, helloLength, clientBytes.length));
            assertEquals(ChallengeResponse.REFUSED, in.read());
        }
        assertEquals(ErrorCode.AUTHENTICATION, failure(replayed).code());
    }

    @Test
    void shouldRefuseAReplayedServerChallenge() throws Exception {
        ChallengeResponse server = new ChallengeResponse(SECRET, () -> "server:1");
        ChallengeResponse client = new ChallengeResponse(SECRET, () -> "alice:1");
        // A genuine server's challenge, recorded by a raw client.
        CompletableFuture<String> genuine = serveOnce(s -> server.authenticateClient(s, Purpose.HANDSHAKE, T));
        byte[] challenge = new byte[ChallengeResponse.CHALLENGE_BYTES];
        try (Socket s = connect()) {
            s.getOutputStream().write(hello(Purpose.HANDSHAKE, new byte[32], "alice:1"));
            new DataInputStream(s.getInputStream()).readFully(challenge);
        }
        failure(genuine);
        // A fake server replays it to a real client, whose nonce is new: the client refuses.
        CompletableFuture<byte[]> fake = serveOnce(s -> {
            try {
                s.getOutputStream().write(challenge);
                return s.getInputStream().readAllBytes();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        try (Socket s = connect()) {
            MooncakeException e = assertThrows(MooncakeException.class,
                    () -> client.authenticateToServer(s, Purpose.HANDSHAKE, T));
            assertEquals(ErrorCode.AUTHENTICATION, e.code());
        }
        byte[] seenByFake = fake.get(10, TimeUnit.SECONDS);
        assertEquals(ChallengeResponse.HELLO_FIXED_BYTES + "alice:1".length(), seenByFake.length,
                "the fake server got the hello and no proof");
    }

    @Test
    void shouldRefuseAPlainMooncakeFrameAndAProofForAnotherPurpose() throws Exception {
        ChallengeResponse server = new ChallengeResponse(SECRET, () -> "server:1");
        CompletableFuture<String> plain = serveOnce(s -> server.authenticateClient(s, Purpose.HANDSHAKE, T));
        try (Socket s = connect()) {
            s.getOutputStream().write(HandshakeCodec.encode(
                    HandshakeFrame.of(HandshakeFrame.METADATA, new com.google.gson.JsonObject())));
            assertEquals(-1, s.getInputStream().read(), "no reply byte");
        }
        assertTrue(failure(plain).getMessage().contains("did not start with the authentication exchange"));

        ChallengeResponse client = new ChallengeResponse(SECRET, () -> "alice:1");
        CompletableFuture<String> data = serveOnce(s -> server.authenticateClient(s, Purpose.DATA, T));
        try (Socket s = connect()) {
            assertEquals(ErrorCode.AUTHENTICATION, assertThrows(MooncakeException.class,
                    () -> client.authenticateToServer(s, Purpose.HANDSHAKE, T)).code());
        }
        assertEquals(ErrorCode.AUTHENTICATION, failure(data).code());
    }

    @Test
    void shouldGiveUpOnASilentPeerWithinTheTimeout() throws Exception {
        ChallengeResponse client = new ChallengeResponse(SECRET, () -> "alice:1");
        CompletableFuture<byte[]> silent = serveOnce(s -> {
            try {
                return s.getInputStream().readAllBytes();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        try (Socket s = connect()) {
            MooncakeException e = assertThrows(MooncakeException.class,
                    () -> client.authenticateToServer(s, Purpose.DATA, Duration.ofMillis(300)));
            assertEquals(ErrorCode.IO, e.code());
            assertTrue(e.getMessage().contains("did not finish within 300 ms"), e.getMessage());
        }
        silent.get(10, TimeUnit.SECONDS);
    }

    private static byte[] hello(Purpose purpose, byte[] nonce, String name) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        return java.nio.ByteBuffer.allocate(ChallengeResponse.HELLO_FIXED_BYTES + n.length)
                .put(ChallengeResponse.MAGIC).put((byte) ChallengeResponse.VERSION).put((byte) purpose.ordinal())
                .put(nonce).putShort((short) n.length).put(n).array();
    }

    /** Copies both ways until either side closes, keeping what the client sent. */
    private static void relay(Socket client, Socket server, ByteArrayOutputStream fromClient) throws IOException {
        Thread back = new Thread(() -> copy(server, client, null));
        back.start();
        copy(client, server, fromClient);
        try {
            back.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void copy(Socket from, Socket to, ByteArrayOutputStream tap) {
        try {
            InputStream in = from.getInputStream();
            OutputStream out = to.getOutputStream();
            byte[] buf = new byte[4096];
            int n;
            while ((n = in.read(buf)) > 0) {
                if (tap != null) {
                    synchronized (tap) {
                        tap.write(buf, 0, n);
                    }
                }
                out.write(buf, 0, n);
            }
            to.shutdownOutput();
        } catch (IOException e) {
            // one side closed: the relay ends
        }
    }
}
