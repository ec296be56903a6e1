package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import io.mooncake4j.internal.auth.AuthSecret;
import io.mooncake4j.internal.auth.ChallengeResponse;
import io.mooncake4j.internal.handshake.HandshakeClient;
import io.mooncake4j.internal.handshake.HandshakeCodec;
import io.mooncake4j.internal.handshake.HandshakeFrame;
import io.mooncake4j.internal.handshake.HandshakeMessages;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Engines with a shared secret ({@code MC_AUTH_TOKEN}) over real handshake sockets: raw clients and
 * engines without the secret learn no address and deliver no notification; engines with it work as
 * before. Also local-only regions, which no peer sees.
 */
@Tag("integration")
@Timeout(60)
class TransferEngineAuthTest {
    static final String SECRET = "a3f1c9e07b2d4e6f8a1b3c5d7e9f0a2b";
    private static final String OTHER_SECRET = "00112233445566778899aabbccddeeff";
    private final List<TransferEngine> engines = new ArrayList<>();

    private TransferEngine engine(String secret) {
        EngineConfig.Builder c = TransferEngineTest.config();
        if (secret != null) {
            c.set(EngineConfig.AUTH_TOKEN, secret);
        }
        TransferEngine e = TransferEngine.create(c.build());
        engines.add(e);
        return e;
    }

    @AfterEach
    void closeAll() {
        engines.forEach(TransferEngine::close);
    }

    /** Sends one raw handshake frame, as an attacker's client would, and returns every byte the server sends. */
    private static byte[] rawCall(TransferEngine target, int type, JsonObject body) throws IOException {
        try (Socket s = new Socket(InetAddress.getLoopbackAddress(), target.rpcPort())) {
            s.setSoTimeout(10_000);
            s.getOutputStream().write(HandshakeCodec.encode(HandshakeFrame.of(type, body)));
            s.shutdownOutput();
            InputStream in = s.getInputStream();
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            try {
                int b;
                while ((b = in.read()) >= 0) {
                    got.write(b);
                }
            } catch (SocketException reset) {
                // the server closed with our frame unread: a reset instead of an orderly end
            }
            return got.toByteArray();
        }
    }

    @Test
    void shouldGiveARawClientNoMetadataReplyAndNoAddressWhenASecretIsSet() throws IOException {
        TransferEngine a = engine(SECRET);
        try (HostMemory buf = a.allocate(1 << 20)) {
            byte[] reply = rawCall(a, HandshakeFrame.METADATA, new JsonObject());
            assertEquals(0, reply.length, "the server must close without a byte: " + new String(reply, StandardCharsets.UTF_8));
            MooncakeException e = assertThrows(MooncakeException.class, () -> HandshakeClient.call(
                    new InetSocketAddress("127.0.0.1", a.rpcPort()), HandshakeFrame.METADATA, new JsonObject(),
                    Duration.ofSeconds(5), HandshakeCodec.DEFAULT_MAX_FRAME_LENGTH));
            assertFalse(e.getMessage().contains(Long.toString(buf.address())), e.getMessage());
        }
    }

    @Test
    void shouldServeMetadataToARawClientWhenNoSecretIsSetAsMooncakeDoes() throws IOException {
        TransferEngine a = engine(null);
        try (HostMemory buf = a.allocate(1 << 20)) {
            String reply = new String(rawCall(a, HandshakeFrame.METADATA, new JsonObject()), StandardCharsets.UTF_8);
            assertTrue(reply.contains(Long.toString(buf.address())), reply);
            assertFalse(a.authenticatesPeers());
        }
    }

    @Test
    void shouldNeverDeliverANotifyFromARawClientOrAnEngineWithoutTheSecret() throws Exception {
        TransferEngine b = engine(SECRET);
        byte[] reply = rawCall(b, HandshakeFrame.NOTIFY, HandshakeMessages.notify("127.0.0.1:1", "forged DEST"));
        assertEquals(0, reply.length);
        TransferEngine open = engine(null);
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> open.sendNotification(b.localSegmentName(), "forged DEST"));
        assertEquals(ErrorCode.METADATA, e.code());
        assertTrue(e.getMessage().contains("MC_AUTH_TOKEN"), e.getMessage());
        TransferEngine wrong = engine(OTHER_SECRET);
        assertEquals(ErrorCode.AUTHENTICATION, assertThrows(MooncakeException.class,
                () -> wrong.sendNotification(b.localSegmentName(), "forged DEST")).code());
        assertEquals(List.of(), b.pollNotifications(Duration.ofMillis(200)));
    }

    @Test
    void shouldRefuseEachOtherBothWaysWhenSecretsDiffer() {
        TransferEngine a = engine(SECRET);
        TransferEngine b = engine(OTHER_SECRET);
        TransferEngine open = engine(null);
        assertEquals(ErrorCode.AUTHENTICATION, assertThrows(MooncakeException.class,
                () -> a.openSegment(b.localSegmentName())).code());
        assertEquals(ErrorCode.AUTHENTICATION, assertThrows(MooncakeException.class,
                () -> b.openSegment(a.localSegmentName())).code());
        // a client with a secret refuses a server without one, and the other way round
        assertEquals(ErrorCode.AUTHENTICATION, assertThrows(MooncakeException.class,
                () -> a.openSegment(open.localSegmentName())).code());
        assertThrows(MooncakeException.class, () -> open.openSegment(a.localSegmentName()));
    }

    @Test
    void shouldTransferAndNotifyWithTheProvedSenderWhenSecretsMatch() throws Exception {
        TransferEngine a = engine(SECRET);
        TransferEngine b = engine(SECRET);
        assertTrue(a.authenticatesPeers());
        TransferEngineFloodTest.assertTransfers(a, b);
        a.sendNotification(b.localSegmentName(), "kv ready");
        assertEquals(List.of(new Notification(a.localSegmentName(), "kv ready")), b.pollNotifications(Duration.ofSeconds(5)));
    }

    @Test
    void shouldRefuseANotifyWhoseSenderNameIsNotTheProvedOne() throws Exception {
        TransferEngine b = engine(SECRET);
        ChallengeResponse mallory = new ChallengeResponse(AuthSecret.of(SECRET), () -> "10.9.9.9:1");
        JsonObject reply = HandshakeClient.call(new InetSocketAddress("127.0.0.1", b.rpcPort()), HandshakeFrame.NOTIFY,
                HandshakeMessages.notify("10.0.0.2:15001", "forged DEST"), Duration.ofSeconds(5),
                HandshakeCodec.DEFAULT_MAX_FRAME_LENGTH, mallory);
        assertFalse(HandshakeMessages.isNotifyOk(reply), reply.toString());
        assertEquals(List.of(), b.pollNotifications(Duration.ofMillis(200)));
    }

    @Test
    void shouldNeverPublishOrServeALocalOnlyRegionButUseItForOwnTransfers() {
        TransferEngine a = engine(null);
        TransferEngine b = engine(null);
        try (HostMemory shared = a.allocate(4096);
                HostMemory secret = a.allocate(4096, RegionAccess.LOCAL_ONLY);
                HostMemory remote = b.allocate(4096)) {
            byte[] data = "kept local".getBytes(StandardCharsets.US_ASCII);
            secret.buffer(0, data.length).put(data);
            List<Long> published = new ArrayList<>();
            for (BufferDescriptor d : b.openSegment(a.localSegmentName()).buffers()) {
                published.add(d.address());
            }
            assertEquals(List.of(shared.address()), published);

            Segment toA = b.openSegment(a.localSegmentName());
            TransferBatch peerRead = b.newBatch(2)
                    .read(toA, remote.address(), secret.address(), data.length)
                    .write(toA, remote.address(), secret.address(), 8)
                    .submit().join();
            assertEquals(TransferStatus.INVALID, peerRead.status(0));
            assertEquals(TransferStatus.INVALID, peerRead.status(1));
            byte[] stillThere = new byte[data.length];
            secret.buffer(0, data.length).get(stillThere);
            assertArrayEquals(data, stillThere);
            byte[] untouched = new byte[data.length];
            remote.buffer(0, data.length).get(untouched);
            assertArrayEquals(new byte[data.length], untouched);

            // a's own transfers use it: as the source of a write, and as a target in a's own segment
            a.write(a.openSegment(b.localSegmentName()), secret.address(), remote.address(), data.length);
            remote.buffer(0, data.length).get(untouched);
            assertArrayEquals(data, untouched);
            a.write(a.openSegment(a.localSegmentName()), shared.address(), secret.address() + 100, 8);
        }
    }

    @Test
    void shouldFailEngineCreationWithAClearErrorForAShortSecret() {
        MooncakeException e = assertThrows(MooncakeException.class, () -> engine("short"));
        assertEquals(ErrorCode.CONFIGURATION, e.code());
        assertTrue(e.getMessage().contains("openssl rand -hex 32"), e.getMessage());
        assertTrue(engines.isEmpty(), "no engine was created");
    }
}
