package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.KvTestSupport;
import io.mooncake4j.djl.kv.PagedKvPool;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The connector over the spi test kit's same-JVM transport ({@code test-mem}); and forged connector
 * messages from a third engine: a DEST that would take a user's KV cache, a DONE that would end a
 * decode request before its KV cache arrived. Each must be ignored, and the KV cache must reach the
 * decode worker that asked for it.
 */
class InMemoryKvConnectorTest extends AbstractKvConnectorTest {
    private static final String SECRET = "5f0c2b9a7d3e4f61a8b7c6d5e4f3a2b1";

    @Override
    String protocol() {
        return InMemoryTransportProvider.PROTOCOL;
    }

    @Override
    void stall(String segment) {
        InMemoryTransportProvider.STALLED.add(segment);
    }

    @Override
    void unstall(String segment) {
        InMemoryTransportProvider.STALLED.remove(segment);
    }

    /** An engine with its pool and push-mode connector; {@code secret} null for none. */
    private KvConnector worker(String secret, Duration transferTimeout) {
        return worker(secret, transferTimeout, TransferMode.PUSH);
    }

    private KvConnector worker(String secret, Duration transferTimeout, TransferMode mode) {
        EngineConfig.Builder b = EngineConfig.builder()
                .environment(Map.of())
                .protocol(InMemoryTransportProvider.PROTOCOL)
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(transferTimeout);
        if (secret != null) {
            b.set(EngineConfig.AUTH_TOKEN, secret);
        }
        TransferEngine engine = track(TransferEngine.create(b.build()));
        PagedKvPool pool = track(PagedKvPool.allocate(engine, LAYOUT));
        return track(KvConnector.create(pool, config(mode, 10, 10, 1), manager));
    }

    /** A prefill, a decode and a third worker without a secret; prefill and decode share {@code secret}. */
    private KvConnector[] workers(String secret, Duration prefillTimeout) {
        return new KvConnector[] {
            worker(secret, prefillTimeout), worker(secret, Duration.ofSeconds(5)), worker(null, Duration.ofSeconds(5))
        };
    }

    /** A finished prefill request of 13 positions (4 blocks) filled with {@code seed}'s pattern. */
    private static KvTransferParams prefilled(KvConnector prefill, String rid, int seed) {
        PrefillRequest p = prefill.startPrefill(rid, 13, null);
        KvTestSupport.fill(prefill.pool(), p.cache().blocks(), seed);
        return overHttp(p.finish());
    }

    @Test
    void shouldIgnoreADestFromAnEngineWithoutTheSecretAndPushToTheRightDecode() throws Exception {
        KvConnector[] w = workers(SECRET, Duration.ofSeconds(5));
        KvConnector prefill = w[0];
        KvConnector decode = w[1];
        KvConnector thief = w[2];
        KvTransferParams source = prefilled(prefill, "r1", 7);

        // the thief learned the request's parameters and asks for its KV cache first
        try (DecodeRequest stolen = thief.fetch(source, 40, new int[0])) {
            KvException e = assertThrows(KvException.class, () -> stolen.await(Duration.ofSeconds(10)));
            assertEquals(KvError.PEER_ERROR, e.error());
        }
        try (DecodeRequest d = decode.fetch(source, 40, new int[0])) {
            KvTransferStats s = d.await(Duration.ofSeconds(20));
            assertNull(KvTestSupport.check(decode.pool(), d.blocks(), 0, 4, 7));
            assertEquals(prefill.engine().localSegmentName(), s.peer());
        }
        assertEquals(0, thief.metrics().decodeCompleted());
        assertEquals(1, prefill.metrics().prefillCompleted());
    }

    @Test
    void shouldIgnoreADestWhoseSenderIsNotTheDecodeItNames() throws Exception {
        KvConnector[] w = workers(null, Duration.ofSeconds(5));
        KvConnector prefill = w[0];
        KvConnector decode = w[1];
        KvConnector forger = w[2];
        KvTransferParams source = prefilled(prefill, "r2", 9);

        // a destination in the decode worker's blocks that the decode worker never gave for r2
        DecodeRequest decoy = track(decode.expect("decoy", 13, 40, new int[0]));
        JsonObject forged = decoy.params().toJson();
        forged.addProperty("request_id", "r2");
        JsonObject body = new JsonObject();
        body.add("params", forged);
        forger.engine().sendNotification(prefill.engine().localSegmentName(),
                new KvMessage(KvMessage.Type.DEST, prefill.id(), forger.id(), "r2", body).encode());
        eventually(() -> prefill.metrics().messagesRefused() == 1, Duration.ofSeconds(10), "forged DEST refused");

        try (DecodeRequest d = decode.fetch(source, 40, new int[0])) {
            d.await(Duration.ofSeconds(20));
            assertNull(KvTestSupport.check(decode.pool(), d.blocks(), 0, 4, 9));
        }
        assertTrue(KvTestSupport.check(decode.pool(), decoy.blocks(), 0, 4, 9) != null,
                "nothing was pushed into the decoy's blocks");
    }

    @Test
    void shouldIgnoreADoneFromAnEngineTheDecodeDidNotAsk() throws Exception {
        KvConnector[] w = workers(null, Duration.ofSeconds(1));
        KvConnector prefill = w[0];
        KvConnector decode = w[1];
        KvConnector forger = w[2];
        KvTransferParams source = prefilled(prefill, "r3", 11);
        stall(decode.engine().localSegmentName());
        try (DecodeRequest d = decode.fetch(source, 40, new int[0])) {
            forger.engine().sendNotification(decode.engine().localSegmentName(),
                    new KvMessage(KvMessage.Type.DONE, decode.id(), forger.id(), "r3", new JsonObject()).encode());
            eventually(() -> decode.metrics().messagesRefused() == 1, Duration.ofSeconds(10), "forged DONE refused");
            assertFalse(d.completion().isDone(), "the forged DONE must not end the request");
            // the real push never arrives (stalled), so the real prefill reports the failure
            KvException e = assertThrows(KvException.class, () -> d.await(Duration.ofSeconds(20)));
            assertEquals(KvError.PEER_ERROR, e.error());
        } finally {
            unstall(decode.engine().localSegmentName());
        }
    }

    @Test
    void shouldCompleteThePrefillWithZeroStatsWhenTheReleaseCarriesMalformedStats() throws Exception {
        KvConnector prefill = worker(null, Duration.ofSeconds(5), TransferMode.PULL);
        KvConnector decode = worker(null, Duration.ofSeconds(5));
        PrefillRequest p = prefill.startPrefill("m1", 13, null);
        KvTestSupport.fill(prefill.pool(), p.cache().blocks(), 5);
        p.finish();
        int freeBefore = prefill.pool().allocator().freeBlocks();

        JsonObject stats = new JsonObject();
        stats.addProperty("tokens", "thirteen"); // the decode side read the blocks, then sent garbage
        JsonObject body = new JsonObject();
        body.add("stats", stats);
        decode.engine().sendNotification(prefill.engine().localSegmentName(),
                new KvMessage(KvMessage.Type.RELEASE, prefill.id(), decode.id(), "m1", body).encode());

        KvTransferStats s = p.completion().get(10, java.util.concurrent.TimeUnit.SECONDS);
        assertEquals("m1", s.requestId());
        assertEquals("prefill", s.role());
        assertEquals(13, s.tokens());
        assertEquals(0, s.bytes());
        assertEquals(0, s.blocks());
        eventually(() -> prefill.pool().allocator().freeBlocks() == freeBefore + 4, Duration.ofSeconds(10),
                "the released blocks are free again");
    }

    @Test
    void shouldCompleteTheDecodeWithZeroStatsWhenTheDoneCarriesMalformedStats() throws Exception {
        KvConnector prefill = worker(null, Duration.ofSeconds(5));
        KvConnector decode = worker(null, Duration.ofSeconds(5));
        DecodeRequest d = track(decode.expect("m2", 13, 40, new int[0]));
        JsonObject stats = new JsonObject();
        stats.addProperty("bytes", "many"); // an object, but malformed
        JsonObject body = new JsonObject();
        body.add("stats", stats);
        prefill.engine().sendNotification(decode.engine().localSegmentName(),
                new KvMessage(KvMessage.Type.DONE, decode.id(), prefill.id(), "m2", body).encode());

        KvTransferStats s = d.await(Duration.ofSeconds(10));
        assertEquals("m2", s.requestId());
        assertEquals("decode", s.role());
        assertEquals(prefill.engine().localSegmentName(), s.peer());
        assertEquals(0, s.bytes());
    }
}
