package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import io.mooncake4j.djl.KvException;

import org.junit.jupiter.api.Timeout;

import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * Coverage-guided fuzzing (Jazzer) of the connector's messages: any engine notification's text
 * reaches {@link KvMessage#decode}, from any peer. The input is the text as UTF-8; the committed
 * seeds are under {@code src/test/resources/.../KvMessageFuzzTestInputs/}.
 */
class KvMessageFuzzTest {
    /**
     * Any text is either not ours ({@code null}, never an exception) or a whole message: the
     * documented fields have their documented JSON types, every accessor answers, and it encodes
     * to a text that decodes to the same message.
     */
    @DictionaryEntries({
        "\"mc4j_kv\":1",
        "\"type\":\"dest\"",
        "\"type\":\"release\"",
        "\"to\":",
        "\"from\":",
        "\"request_id\":",
        "\"reason\":",
        "\"params\":{",
        "\"stats\":{"
    })
    @Timeout(10) // per input; Jazzer passes it to libFuzzer as -timeout when fuzzing
    @FuzzTest(maxDuration = "30s")
    void shouldDecodeWholeMessageOrNullWhenNotificationIsArbitrary(byte[] input) {
        KvMessage m = KvMessage.decode(new String(input, StandardCharsets.UTF_8));
        if (m == null) {
            return;
        }
        assertWhole(m);
        KvMessage again = KvMessage.decode(m.encode());
        assertNotNull(again, m::encode);
        assertWhole(again);
        assertEquals(m.type, again.type);
        assertEquals(m.to, again.to);
        assertEquals(m.from, again.from);
        assertEquals(m.requestId, again.requestId);
        assertEquals(m.reason(), again.reason());
        assertEquals(m.body.get("params"), again.body.get("params"));
        assertEquals(m.body.get("stats"), again.body.get("stats"));
        checkParams(m.body.get("params"));
    }

    /** A DEST's params parse to what they write back out, or are refused with a KvException. */
    private static void checkParams(JsonElement params) {
        if (params == null) {
            return;
        }
        KvTransferParams p;
        try {
            p = KvTransferParams.fromJson(params.getAsJsonObject());
        } catch (KvException e) {
            assertNotNull(e.getMessage());
            return;
        }
        assertEquals(p.toJson(), KvTransferParams.fromJson(p.toJson()).toJson());
    }

    /** What KvConnector relies on without checking. */
    private static void assertWhole(KvMessage m) {
        assertNotNull(m.type);
        JsonElement type = m.body.get("type");
        assertTrue(type != null && isString(type), "type: " + type);
        assertEquals(m.type.jsonName(), type.getAsString().toLowerCase(Locale.ROOT));
        assertIsString(m.body, "to", m.to);
        assertIsString(m.body, "from", m.from);
        assertIsString(m.body, "request_id", m.requestId);
        JsonElement reason = m.body.get("reason");
        assertTrue(reason == null || reason.isJsonNull() || isString(reason), "reason: " + reason);
        assertNotNull(m.reason());
        assertAbsentOrObject(m.body, "params");
        assertAbsentOrObject(m.body, "stats");
        assertNotNull(m.toString());
    }

    private static void assertIsString(JsonObject body, String field, String decoded) {
        JsonElement e = body.get(field);
        assertTrue(e != null && isString(e), field + ": " + e);
        assertEquals(e.getAsString(), decoded);
    }

    private static void assertAbsentOrObject(JsonObject body, String field) {
        JsonElement e = body.get(field);
        assertTrue(e == null || e.isJsonObject(), field + ": " + e);
    }

    private static boolean isString(JsonElement e) {
        return e.isJsonPrimitive() && e.getAsJsonPrimitive().isString();
    }
}
