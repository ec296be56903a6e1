package io.mooncake4j.djl.connector;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.util.Locale;

/**
 * A connector-to-connector notification, sent as the text of an engine notification: {@code
 * {"mc4j_kv": 1, "type": "dest"|"done"|"error"|"abort"|"release", "to": <connector>, "from":
 * <connector>, "request_id": ..., "params": {...}, "stats": {...}, "reason": "..."}}.
 */
final class KvMessage {
    static final String MARKER = "mc4j_kv";

    /** Message types. */
    enum Type {
        /** decode -> prefill: push the request's KV cache to these blocks ({@code params}). */
        DEST,
        /** prefill -> decode: the blocks were written ({@code stats}). */
        DONE,
        /** either way: the request failed ({@code reason}); the sender no longer touches the peer's blocks. */
        ERROR,
        /** decode -> prefill: stop, decode gave up on the request. */
        ABORT,
        /** decode -> prefill (pull): the blocks were read, free them ({@code stats}, or {@code reason} on failure). */
        RELEASE;

        String jsonName() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    final Type type;
    final String to;
    final String from;
    final String requestId;
    final JsonObject body;

    KvMessage(Type type, String to, String from, String requestId, JsonObject body) {
        this.type = type;
        this.to = to;
        this.from = from;
        this.requestId = requestId;
        this.body = body == null ? new JsonObject() : body;
    }

    String encode() {
        JsonObject o = body.deepCopy();
        o.addProperty(MARKER, 1);
        o.addProperty("type", type.jsonName());
        o.addProperty("to", to);
        o.addProperty("from", from);
        o.addProperty("request_id", requestId);
        return o.toString();
    }

    /**
     * The message in a notification's text, or null when the text is not one of ours or not a whole
     * message (a field above missing or of another JSON type), so no reader meets a half-valid one.
     */
    static KvMessage decode(String text) {
        if (text == null || text.isEmpty() || text.charAt(0) != '{' || !text.contains(MARKER)) {
            return null;
        }
        try {
            JsonElement e = JsonParser.parseString(text);
            if (!e.isJsonObject()) {
                return null;
            }
            JsonObject o = e.getAsJsonObject();
            JsonElement reason = o.get("reason");
            if (!o.has(MARKER) || !absentOrObject(o.get("params")) || !absentOrObject(o.get("stats"))
                    || reason != null && !reason.isJsonNull() && !isString(reason)) {
                return null;
            }
            Type t = Type.valueOf(string(o, "type").toUpperCase(Locale.ROOT));
            return new KvMessage(t, string(o, "to"), string(o, "from"), string(o, "request_id"), o);
        } catch (RuntimeException ex) {
            return null;
        }
    }

    /** The string {@code field}; throws when it is missing or not a JSON string. */
    private static String string(JsonObject o, String field) {
        JsonElement e = o.get(field);
        if (e == null || !isString(e)) {
            throw new IllegalArgumentException("'" + field + "' is not a string");
        }
        return e.getAsString();
    }

    private static boolean isString(JsonElement e) {
        return e.isJsonPrimitive() && e.getAsJsonPrimitive().isString();
    }

    private static boolean absentOrObject(JsonElement e) {
        return e == null || e.isJsonObject();
    }

    String reason() {
        JsonElement r = body.get("reason");
        return r == null || r.isJsonNull() ? "no reason given" : r.getAsString();
    }

    @Override
    public String toString() {
        return type.jsonName() + " " + requestId + " " + from + "->" + to;
    }
}
