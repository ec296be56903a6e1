package io.mooncake4j.internal.metadata;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.internal.handshake.HandshakeClient;
import io.mooncake4j.internal.handshake.HandshakeFrame;
import io.mooncake4j.internal.handshake.HandshakeServer;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.MetadataContext;
import io.mooncake4j.spi.MetadataStore;
import io.mooncake4j.spi.MetadataStoreProvider;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

class P2pMetadataStoreTest {
    private static final EngineConfig CONFIG = EngineConfig.builder().environment(Map.of()).build();
    private static final MetadataContext CONTEXT =
            new MetadataContext() {
                @Override
                public EngineConfig config() {
                    return CONFIG;
                }

                @Override
                public JsonObject call(
                        InetSocketAddress peer, int type, JsonObject request, Duration timeout) {
                    return HandshakeClient.call(
                            peer, type, request, timeout, CONFIG.handshakeMaxLength());
                }
            };

    private final P2pMetadataStoreProvider provider = new P2pMetadataStoreProvider();
    private final MetadataStore store = provider.create("P2PHANDSHAKE", CONTEXT);
    private HandshakeServer server;

    @AfterEach
    void close() {
        store.close();
        if (server != null) {
            server.close();
        }
    }

    private static JsonObject descriptor(String name) {
        JsonObject o = new JsonObject();
        o.addProperty("name", name);
        o.addProperty("protocol", "tcp");
        o.addProperty("tcp_data_port", 16001);
        o.addProperty("tcp_proto_version", 2);
        o.addProperty("timestamp", "2026-01-01 00:00:00");
        JsonArray buffers = new JsonArray();
        JsonObject b = new JsonObject();
        b.addProperty("name", "cuda:0");
        b.add("addr", JsonParser.parseString("18446603336221196288")); // above Long.MAX_VALUE
        b.addProperty("length", 1L << 30);
        buffers.add(b);
        o.add("buffers", buffers);
        return o;
    }

    @Test
    void shouldAcceptP2pHandshakeInAnyCaseAndTheEmptyValue() {
        assertTrue(provider.accepts("P2PHANDSHAKE"));
        assertTrue(provider.accepts("p2phandshake"));
        assertTrue(provider.accepts(" P2PHandshake "));
        assertTrue(provider.accepts(null));
        assertTrue(provider.accepts(""));
        assertFalse(provider.accepts("etcd://10.0.0.1:2379"));
        assertFalse(provider.accepts("http://10.0.0.1:8080/metadata"));
        assertFalse(provider.accepts("P2PHANDSHAKE2"));
        assertEquals("P2PHANDSHAKE", provider.name());
    }

    @Test
    void shouldBeFoundByServiceLoader() {
        boolean found = false;
        for (MetadataStoreProvider p : ServiceLoader.load(MetadataStoreProvider.class)) {
            found |= p instanceof P2pMetadataStoreProvider;
        }
        assertTrue(found, "META-INF/services must name P2pMetadataStoreProvider");
    }

    @Test
    void shouldNameSegmentsByHandshakeAddress() {
        assertEquals("10.0.0.1:15000", store.segmentName("10.0.0.1", 15000));
        assertEquals(
                "node-7.cluster.local:65535", store.segmentName("node-7.cluster.local", 65535));
        assertEquals("[fd00::5]:15123", store.segmentName("fd00::5", 15123));
        assertEquals("[fd00::5]:15123", store.segmentName("[fd00::5]", 15123));
        for (int bad : new int[] {0, -1, 65536}) {
            assertEquals(
                    ErrorCode.INVALID_ARGUMENT,
                    assertThrows(MooncakeException.class, () -> store.segmentName("10.0.0.1", bad))
                            .code());
        }
        for (String bad : new String[] {null, "", " ", "a b"}) {
            assertEquals(
                    ErrorCode.INVALID_ARGUMENT,
                    assertThrows(MooncakeException.class, () -> store.segmentName(bad, 15000))
                            .code());
        }
    }

    @Test
    void shouldParseNamesItFormats() {
        InetSocketAddress v4 = P2pMetadataStore.parseName("10.0.0.1:15000");
        assertEquals("10.0.0.1", v4.getHostString());
        assertEquals(15000, v4.getPort());
        InetSocketAddress v6 = P2pMetadataStore.parseName(store.segmentName("::1", 16000));
        assertEquals("::1", v6.getHostString());
        assertEquals(16000, v6.getPort());
        assertEquals("host", P2pMetadataStore.parseName("host:1").getHostString());
        InetSocketAddress resolved = store.rpcAddress("127.0.0.1:15001");
        assertFalse(resolved.isUnresolved());
        assertEquals(new InetSocketAddress("127.0.0.1", 15001), resolved);
        assertEquals(new InetSocketAddress("::1", 15001), store.rpcAddress("[::1]:15001"));
    }

    @Test
    void shouldExplainMalformedNames() {
        for (String bad :
                new String[] {
                    "",
                    "host",
                    "host:",
                    ":15000",
                    "host:0",
                    "host:65536",
                    "host:15x",
                    "host:+1",
                    "host:-1",
                    "host:150000",
                    "::1:15000",
                    "[::1]",
                    "[::1]15000",
                    "[::1]:",
                    "[]:1",
                    "[host]:1",
                    "[::1:1",
                    "a b:1",
                    "host:1 ",
                    "http://host:1",
                    "host]:1"
                }) {
            MooncakeException e =
                    assertThrows(MooncakeException.class, () -> store.rpcAddress(bad), bad);
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), bad);
            assertTrue(e.getMessage().contains("host:port"), e.getMessage());
            assertEquals(
                    ErrorCode.INVALID_ARGUMENT,
                    assertThrows(MooncakeException.class, () -> store.fetch(bad, null)).code());
        }
        assertEquals(
                ErrorCode.INVALID_ARGUMENT,
                assertThrows(MooncakeException.class, () -> store.rpcAddress(null)).code());
    }

    @Test
    @Timeout(10)
    void shouldFetchTheDescriptorFromThePeersHandshakeServer() {
        AtomicReference<JsonObject> received = new AtomicReference<>();
        server =
                HandshakeServer.start(
                        "127.0.0.1",
                        0,
                        0,
                        CONFIG.handshakeMaxLength(),
                        Duration.ofSeconds(2),
                        (type, request, remote, peer) -> {
                            assertEquals(HandshakeFrame.METADATA, type);
                            received.set(request);
                            return descriptor("127.0.0.1:" + remote.getPort());
                        });
        String name = store.segmentName("127.0.0.1", server.port());

        SegmentDescriptor d = store.fetch(name, Duration.ofSeconds(2));
        assertTrue(d.name().startsWith("127.0.0.1:"));
        assertEquals("tcp", d.protocol());
        assertEquals(16001, d.longField("tcp_data_port", -1));
        assertEquals(2, d.longField("tcp_proto_version", 1));
        BufferDescriptor b = d.buffers().get(0);
        assertEquals("cuda:0", b.name());
        assertEquals("18446603336221196288", Long.toUnsignedString(b.address()));
        assertEquals(1L << 30, b.length());
        assertEquals(new JsonObject(), received.get(), "before publish the request is {}");

        SegmentDescriptor self =
                new SegmentDescriptor(
                        "127.0.0.1:15999",
                        "tcp",
                        List.of(new BufferDescriptor("cpu:0", 4096, 4096)),
                        null);
        store.publish(self, new InetSocketAddress("127.0.0.1", 15999));
        assertNotNull(store.fetch(name, null)); // null timeout: MC_HANDSHAKE_CONNECT_TIMEOUT
        assertEquals(
                self.toJson(),
                received.get(),
                "the request carries our own descriptor, as Mooncake's does");
    }

    @Test
    @Timeout(5)
    void shouldReportAnUnreachableSegmentQuickly() throws IOException {
        int port;
        try (ServerSocket ss = new ServerSocket(0)) {
            port = ss.getLocalPort();
        }
        String name = "127.0.0.1:" + port;
        long start = System.nanoTime();
        MooncakeException e =
                assertThrows(
                        MooncakeException.class, () -> store.fetch(name, Duration.ofSeconds(5)));
        assertEquals(ErrorCode.SEGMENT_NOT_FOUND, e.code());
        assertTrue(e.getMessage().contains("'" + name + "'"), e.getMessage());
        assertTrue(
                e.getMessage().startsWith("[SEGMENT_NOT_FOUND] cannot fetch segment"),
                e.getMessage());
        assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) < 1000);
    }

    @Test
    @Timeout(10)
    void shouldRejectAnUnusableDescriptor() {
        server =
                HandshakeServer.start(
                        "127.0.0.1",
                        0,
                        0,
                        CONFIG.handshakeMaxLength(),
                        Duration.ofSeconds(2),
                        (type, request, remote, peer) -> new JsonObject());
        String name = "127.0.0.1:" + server.port();
        MooncakeException e =
                assertThrows(
                        MooncakeException.class, () -> store.fetch(name, Duration.ofSeconds(2)));
        assertEquals(ErrorCode.METADATA, e.code());
        assertTrue(e.getMessage().contains(name), e.getMessage());
    }

    @Test
    void shouldRefuseUseAfterCloseAndCloseIdempotently() {
        store.close();
        store.close();
        assertEquals(
                ErrorCode.CLOSED,
                assertThrows(MooncakeException.class, () -> store.fetch("127.0.0.1:1", null))
                        .code());
    }
}
