package io.mooncake4j.metadata.etcd;

import static io.mooncake4j.metadata.etcd.EtcdTestSupport.assertRoundTrip;
import static io.mooncake4j.metadata.etcd.EtcdTestSupport.await;
import static io.mooncake4j.metadata.etcd.EtcdTestSupport.config;
import static io.mooncake4j.metadata.etcd.EtcdTestSupport.engine;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Notification;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Engines that find each other through a real etcd on loopback and move bytes over tcp. */
@Tag("integration")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class EtcdMetadataStoreIntegrationTest {
    @RegisterExtension
    static final EtcdServer ETCD = new EtcdServer();

    @Test
    void shouldMoveBytesBetweenEnginesThatFindEachOtherThroughEtcd() throws Exception {
        try (TransferEngine a = engine(ETCD.uri());
                TransferEngine b = engine(ETCD.uri());
                HostMemory ma = a.allocate(1 << 20);
                HostMemory mb = b.allocate(1 << 20)) {
            Segment sb = a.openSegment(b.localSegmentName());
            assertEquals(mb.address(), sb.buffers().get(0).address());
            assertRoundTrip(a, ma, sb, mb, 1);

            a.sendNotification(b.localSegmentName(), "through rpc_meta");
            List<Notification> got = b.pollNotifications(Duration.ofSeconds(20));
            assertEquals(List.of(new Notification(a.localSegmentName(), "through rpc_meta")), got);
        }
    }

    @Test
    void shouldStoreMooncakesKeysAndJsonWhenPublishing() throws Exception {
        try (TransferEngine b = engine(ETCD.uri()); HostMemory mb = b.allocate(1 << 16)) {
            String name = b.localSegmentName();
            assertEquals("127.0.0.1:" + b.rpcPort(), name);
            JsonObject meta = JsonParser.parseString(ETCD.get("mooncake/rpc_meta/" + name)).getAsJsonObject();
            assertEquals(2, meta.size(), meta.toString());
            assertEquals("127.0.0.1", meta.get("ip_or_host_name").getAsString());
            assertEquals(b.rpcPort(), meta.get("rpc_port").getAsInt());
            JsonObject ram = JsonParser.parseString(ETCD.get("mooncake/ram/" + name)).getAsJsonObject();
            assertEquals(name, ram.get("name").getAsString());
            assertEquals("tcp", ram.get("protocol").getAsString());
            assertTrue(ram.get("tcp_data_port").getAsInt() > 0, ram.toString());
            JsonArray buffers = ram.getAsJsonArray("buffers");
            assertEquals(1, buffers.size());
            JsonObject buffer = buffers.get(0).getAsJsonObject();
            assertEquals("cpu:0", buffer.get("name").getAsString());
            assertEquals(mb.address(), buffer.get("addr").getAsLong());
            assertEquals(mb.length(), buffer.get("length").getAsLong());
        }
    }

    @Test
    void shouldWithdrawBothEntriesWhenEngineCloses() throws Exception {
        TransferEngine b = engine(ETCD.uri());
        String name = b.localSegmentName();
        assertNotNull(ETCD.get("mooncake/ram/" + name));
        b.close();
        assertNull(ETCD.get("mooncake/ram/" + name));
        assertNull(ETCD.get("mooncake/rpc_meta/" + name));
    }

    @Test
    void shouldKeepClustersApartWhenClusterIdDiffers() throws Exception {
        try (TransferEngine a = TransferEngine.create(config(ETCD.uri()).set(EtcdSettings.CLUSTER_ID, "blue").build());
                TransferEngine other = TransferEngine.create(config(ETCD.uri()).set(EtcdSettings.CLUSTER_ID, "red").build());
                TransferEngine b = TransferEngine.create(config(ETCD.uri()).set(EtcdSettings.CLUSTER_ID, "blue").build());
                HostMemory ma = a.allocate(1 << 16);
                HostMemory mb = b.allocate(1 << 16)) {
            String name = b.localSegmentName();
            assertNotNull(ETCD.get("mooncake/blue/ram/" + name));
            assertNotNull(ETCD.get("mooncake/blue/rpc_meta/" + name));
            assertNull(ETCD.get("mooncake/ram/" + name));
            MooncakeException e = assertThrows(MooncakeException.class, () -> other.openSegment(name));
            assertEquals(ErrorCode.SEGMENT_NOT_FOUND, e.code());
            assertTrue(e.getMessage().contains("mooncake/red/ram/" + name), e.getMessage());
            assertRoundTrip(a, ma, a.openSegment(name), mb, 2);
        }
    }

    @Test
    void shouldRefreshOpenSegmentWhenPeerRegistersMemory() throws Exception {
        try (TransferEngine a = engine(ETCD.uri());
                TransferEngine b = engine(ETCD.uri());
                HostMemory ma = a.allocate(1 << 16)) {
            Segment sb = a.openSegment(b.localSegmentName());
            assertEquals(0, sb.buffers().size());
            try (HostMemory mb = b.allocate(1 << 16)) {
                await(Duration.ofSeconds(30), "the watch never showed " + b.localSegmentName() + "'s new buffer",
                        () -> sb.buffers().size() == 1 && sb.buffers().get(0).address() == mb.address());
                assertRoundTrip(a, ma, sb, mb, 3);
            }
        }
    }

    @Test
    void shouldFollowPeerThatRestartsUnderTheSameNameAtAnotherAddress() throws Exception {
        String name = "decode-" + freePort();
        try (TransferEngine a = engine(ETCD.uri()); HostMemory ma = a.allocate(1 << 16)) {
            Segment seen;
            try (TransferEngine b = TransferEngine.create(config(ETCD.uri()).set(EtcdSettings.LOCAL_SERVER_NAME, name).build());
                    HostMemory mb = b.allocate(1 << 16)) {
                assertEquals(name, b.localSegmentName());
                seen = a.openSegment(name);
                assertRoundTrip(a, ma, seen, mb, 4);
            }
            // listening on 127.0.0.2 only: reached only if the peer's host is looked up again with its new descriptor
            try (TransferEngine b2 = TransferEngine.create(config(ETCD.uri()).localHostname("127.0.0.2")
                            .set(EngineConfig.TCP_BIND_ADDRESS, "127.0.0.2").set(EtcdSettings.LOCAL_SERVER_NAME, name).build());
                    HostMemory mb2 = b2.allocate(1 << 18)) {
                Segment s = seen;
                await(Duration.ofSeconds(30), "the watch never showed the restarted peer's buffer",
                        () -> s.buffers().size() == 1 && s.buffers().get(0).address() == mb2.address());
                assertRoundTrip(a, ma, s, mb2, 5);
            }
        }
    }

    @Test
    void shouldReachSegmentsThatMooncakeWroteWithoutLeaseAtTheHostOfTheirRpcMeta() throws Exception {
        assertEquals("127.0.0.1", InetAddress.getByName("localhost").getHostAddress(), "this test needs localhost = 127.0.0.1");
        try (TransferEngine a = engine(ETCD.uri());
                TransferEngine b = engine(ETCD.uri());
                HostMemory ma = a.allocate(1 << 16);
                HostMemory mb = b.allocate(1 << 16)) {
            putAsMooncakeDoes("127.0.0.1", "127.0.0.1", b, mb); // a name that is its address
            putAsMooncakeDoes("decode-7", "localhost", b, mb); // one that is not: only rpc_meta says where
            long seed = 6;
            for (String name : List.of("127.0.0.1", "decode-7")) {
                assertRoundTrip(a, ma, a.openSegment(name), mb, seed++);
                a.sendNotification(name, "to " + name);
                assertEquals("to " + name, b.pollNotifications(Duration.ofSeconds(20)).get(0).message());
            }
        }
    }

    @Test
    void shouldReachPeerWhoseSegmentNameIsNotItsAddress() throws Exception {
        try (TransferEngine a = engine(ETCD.uri());
                TransferEngine b = TransferEngine.create(config(ETCD.uri()).set(EtcdSettings.LOCAL_SERVER_NAME, "prefill-0").build());
                HostMemory ma = a.allocate(1 << 16);
                HostMemory mb = b.allocate(1 << 16)) {
            assertEquals("prefill-0", b.localSegmentName());
            assertRoundTrip(a, ma, a.openSegment("prefill-0"), mb, 8);
        }
    }

    /**
     * Writes {@code name}'s entries the way Mooncake's etcd plugin does (plain puts; compact JSON
     * with a trailing newline, from Json::FastWriter): its segment is {@code b}'s memory {@code mb}
     * and data port, its {@code rpc_meta} says it lives at {@code host} on {@code b}'s handshake port.
     */
    private static void putAsMooncakeDoes(String name, String host, TransferEngine b, HostMemory mb) throws Exception {
        JsonObject published = JsonParser.parseString(ETCD.get("mooncake/ram/" + b.localSegmentName())).getAsJsonObject();
        String descriptor = "{\"buffers\":[{\"addr\":" + Long.toUnsignedString(mb.address()) + ",\"length\":"
                + mb.length() + ",\"name\":\"cpu:0\"}],\"name\":\"" + name + "\",\"protocol\":\"tcp\","
                + "\"tcp_data_port\":" + published.get("tcp_data_port").getAsInt()
                + ",\"tcp_proto_version\":2,\"timestamp\":\"2026-12-01 14:00:00.000\"}\n";
        ETCD.put("mooncake/ram/" + name, descriptor);
        ETCD.put("mooncake/rpc_meta/" + name, "{\"ip_or_host_name\":\"" + host + "\",\"rpc_port\":" + b.rpcPort() + "}\n");
    }

    @Test
    void shouldUseTheLiveEndpointWhenAnotherInTheListIsDown() throws Exception {
        String uri = "etcd://127.0.0.1:" + freePort() + "," + ETCD.uri().substring("etcd://".length());
        try (TransferEngine a = engine(uri);
                TransferEngine b = engine(uri);
                HostMemory ma = a.allocate(1 << 16);
                HostMemory mb = b.allocate(1 << 16)) {
            assertRoundTrip(a, ma, a.openSegment(b.localSegmentName()), mb, 7);
        }
    }

    @Test
    void shouldExpireEntriesWhenWorkerDiesWithoutWithdrawingThem() throws Exception {
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        Process p = new ProcessBuilder(java, "-Xmx256m", "-cp", System.getProperty("java.class.path"),
                EtcdWorker.class.getName(), ETCD.uri()).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        try (TransferEngine a = engine(ETCD.uri())) {
            BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            String line = CompletableFuture.supplyAsync(() -> {
                try {
                    return out.readLine();
                } catch (java.io.IOException e) {
                    return null;
                }
            }).get(60, TimeUnit.SECONDS);
            assertNotNull(line, "the worker exited before it was ready");
            assertTrue(line.startsWith("READY "), line);
            String name = line.split(" ")[1];
            assertEquals(1, a.openSegment(name).buffers().size());
            // it keeps its entries alive for longer than the TTL while it lives
            Thread.sleep(TimeUnit.SECONDS.toMillis(3L * EtcdTestSupport.TTL_SECONDS));
            assertNotNull(ETCD.get("mooncake/ram/" + name));
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            await(Duration.ofSeconds(30), "the killed worker's entries did not expire",
                    () -> ETCD.getUnchecked("mooncake/ram/" + name) == null
                            && ETCD.getUnchecked("mooncake/rpc_meta/" + name) == null);
            TransferEngine fresh = a;
            MooncakeException e = assertThrows(MooncakeException.class, () -> fresh.openSegment(name + "x"));
            assertEquals(ErrorCode.SEGMENT_NOT_FOUND, e.code());
            assertEquals(ErrorCode.SEGMENT_NOT_FOUND,
                    assertThrows(MooncakeException.class, () -> fresh.sendNotification(name, "gone")).code());
        } finally {
            p.destroyForcibly();
        }
    }

    private static int freePort() throws java.io.IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
