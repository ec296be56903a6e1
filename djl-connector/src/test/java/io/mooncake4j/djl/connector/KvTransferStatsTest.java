package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import org.junit.jupiter.api.Test;

/**
 * Stats travel in DONE and RELEASE messages from the peer: parsing malformed ones is a peer error, never
 * a crash, and both sides then count the request's stats as zeros rather than failing it.
 */
class KvTransferStatsTest {
    private static final KvTransferStats STATS = new KvTransferStats(
            "r1", "decode", TransferMode.PUSH, "peer:1", 64, 0, 4, 1, 1, 1 << 20, 2_000_000, 3_000_000);

    @Test
    void shouldReadBackWhatItWrites() {
        assertEquals(STATS, KvTransferStats.fromJson(STATS.toJson()));
    }

    @Test
    void shouldRefuseMissingFieldsAsAPeerError() {
        JsonObject o = STATS.toJson();
        o.remove("bytes");
        assertPeerError(o);
    }

    @Test
    void shouldRefuseWrongTypesAndUnknownModesAsAPeerError() {
        JsonObject wrongType = STATS.toJson();
        wrongType.add("tokens", new JsonObject());
        assertPeerError(wrongType);
        JsonObject badMode = STATS.toJson();
        badMode.add("mode", new JsonPrimitive("teleport"));
        assertPeerError(badMode);
    }

    private static void assertPeerError(JsonObject o) {
        KvException e = assertThrows(KvException.class, () -> KvTransferStats.fromJson(o));
        assertEquals(KvError.PEER_ERROR, e.error());
    }

    @Test
    void shouldTakeThePeersStatsAsSeenByThisSideWhenTheyAreWellFormed() {
        KvTransferStats s = KvTransferStats.reportedBy("prefill:2", STATS.toJson(), unreported(), "prefill", 7);
        assertEquals(STATS.bytes(), s.bytes());
        assertEquals("prefill", s.role());
        assertEquals("prefill:2", s.peer());
        assertEquals(7, s.totalNanos());
    }

    @Test
    void shouldCountMalformedOrMissingStatsAsZerosOfTheSameRequest() {
        JsonObject malformed = STATS.toJson();
        malformed.remove("bytes");
        for (com.google.gson.JsonElement e : new com.google.gson.JsonElement[] {
                malformed, new JsonPrimitive("x"), null, com.google.gson.JsonNull.INSTANCE}) {
            KvTransferStats s = KvTransferStats.reportedBy("decode:9", e, unreported(), "decode", 5);
            assertEquals("r1", s.requestId());
            assertEquals(64, s.tokens());
            assertEquals(0, s.bytes());
            assertEquals(0, s.blocks());
            assertEquals("decode", s.role());
            assertEquals("decode:9", s.peer());
        }
    }

    private static KvTransferStats unreported() {
        return KvTransferStats.unreported("r1", TransferMode.PUSH, 64, 0);
    }
}
