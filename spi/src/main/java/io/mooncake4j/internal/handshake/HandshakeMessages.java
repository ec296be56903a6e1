package io.mooncake4j.internal.handshake;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

import java.util.Objects;

/**
 * Builds and reads the bodies of Notify, Probe and Connection messages, so the engine, the server's
 * handler and tests agree on them. Every builder returns a new object: Gson objects are mutable, so
 * a shared constant could be changed by whoever receives it.
 */
public final class HandshakeMessages {
    /** Notify field: the sender's segment name. */
    public static final String NOTIFY_NAME = "name";

    /** Notify field: the text. */
    public static final String NOTIFY_MSG = "notify_msg";

    /** Connection reply field: non-empty means the connection was refused, with the reason. */
    public static final String REPLY_MSG = "reply_msg";

    /** Probe reply field. */
    public static final String STATUS = "status";

    /** The value Mooncake uses for success in Notify and Probe replies. */
    public static final String SUCCESS = "success";

    /** The exact JSON of a Notify reply: {@code {"name":"","notify_msg":"success"}}. */
    public static final String NOTIFY_OK_JSON = "{\"name\":\"\",\"notify_msg\":\"success\"}";

    /** The exact JSON of a Probe reply: {@code {"status":"success"}}. */
    public static final String PROBE_OK_JSON = "{\"status\":\"success\"}";

    private HandshakeMessages() {}

    /** A decoded Notify request. */
    public record Notify(String sender, String message) {
        public Notify {
            Objects.requireNonNull(sender, "sender");
            Objects.requireNonNull(message, "message");
        }
    }

    /** A Notify request: {@code {"name": sender, "notify_msg": message}}. */
    public static JsonObject notify(String sender, String message) {
        JsonObject o = new JsonObject();
        o.addProperty(NOTIFY_NAME, Objects.requireNonNull(sender, "sender"));
        o.addProperty(NOTIFY_MSG, Objects.requireNonNull(message, "message"));
        return o;
    }

    /**
     * Reads a Notify request.
     *
     * @throws MooncakeException {@code METADATA} if {@code name} or {@code notify_msg} is missing
     *     or not a string
     */
    public static Notify parseNotify(JsonObject request) {
        return new Notify(
                requiredString(request, NOTIFY_NAME, "Notify request"),
                requiredString(request, NOTIFY_MSG, "Notify request"));
    }

    /** The Notify reply: {@code {"name": "", "notify_msg": "success"}}. */
    public static JsonObject notifyOk() {
        return notifyReply(SUCCESS);
    }

    /**
     * A Notify reply refusing the message: {@code {"name": "", "notify_msg": reason}}. Anything
     * other than {@code success} tells the sender it was not delivered.
     */
    public static JsonObject notifyRefused(String reason) {
        return notifyReply(
                reason == null || reason.isEmpty() || SUCCESS.equals(reason) ? "refused" : reason);
    }

    private static JsonObject notifyReply(String msg) {
        JsonObject o = new JsonObject();
        o.addProperty(NOTIFY_NAME, "");
        o.addProperty(NOTIFY_MSG, msg);
        return o;
    }

    /** Whether a Notify reply says the message was accepted. */
    public static boolean isNotifyOk(JsonObject reply) {
        return SUCCESS.equals(optionalString(reply, NOTIFY_MSG));
    }

    /** A Probe request: {@code {}}. */
    public static JsonObject probe() {
        return new JsonObject();
    }

    /** The Probe reply: {@code {"status": "success"}}. */
    public static JsonObject probeOk() {
        JsonObject o = new JsonObject();
        o.addProperty(STATUS, SUCCESS);
        return o;
    }

    /** Whether a Probe reply says the peer is alive. */
    public static boolean isProbeOk(JsonObject reply) {
        return SUCCESS.equals(optionalString(reply, STATUS));
    }

    /** A Connection reply refusing the connection: {@code {"reply_msg": reason}}. */
    public static JsonObject connectionRefused(String reason) {
        String r = reason == null || reason.isEmpty() ? "refused" : reason;
        JsonObject o = new JsonObject();
        o.addProperty(REPLY_MSG, r);
        return o;
    }

    /** A Connection reply's {@code reply_msg}: empty (accepted) when absent or not a string. */
    public static String replyMessage(JsonObject reply) {
        String m = optionalString(reply, REPLY_MSG);
        return m == null ? "" : m;
    }

    private static String optionalString(JsonObject o, String field) {
        if (o == null) {
            return null;
        }
        JsonElement e = o.get(field);
        return e != null && e.isJsonPrimitive() && e.getAsJsonPrimitive().isString()
                ? e.getAsString()
                : null;
    }

    /**
     * The string {@code field}. The error names what was found instead, never the request's text:
     * the request is a peer's, of any size and nesting.
     */
    private static String requiredString(JsonObject o, String field, String what) {
        String s = optionalString(o, field);
        if (s == null) {
            JsonElement e = o == null ? null : o.get(field);
            throw new MooncakeException(
                    ErrorCode.METADATA,
                    what
                            + " needs a string '"
                            + field
                            + "', "
                            + (e == null ? "which is missing" : "got " + HandshakeCodec.kind(e))
                            + "; is the peer a Mooncake engine of a compatible version?");
        }
        return s;
    }
}
