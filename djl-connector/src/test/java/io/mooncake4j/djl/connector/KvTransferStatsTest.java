package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import org.junit.jupiter.api.Test;

/** Stats travel in RELEASE messages from the peer: malformed ones are a peer error, never a crash. */
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
}
