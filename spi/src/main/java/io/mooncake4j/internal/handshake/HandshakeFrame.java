package io.mooncake4j.internal.handshake;

import com.google.gson.JsonObject;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

import java.util.Objects;

/**
 * One handshake message: a type and a JSON object body.
 *
 * <p>On the wire: {@code u64 length} (little-endian; the type byte plus the JSON), {@code u8 type},
 * compact JSON. A <em>legacy</em> frame, as sent by Mooncake before the type byte existed, has no
 * type byte (its first payload byte is greater than 3, normally {@code '{'}) and means {@link
 * #CONNECTION}. A reply is framed like its request: {@link #reply} keeps the type and the legacy
 * flag, because a legacy peer would read a type byte as the start of its JSON (Mooncake's own
 * server answers legacy with legacy too).
 *
 * <p>The body is the caller's object, not a copy: frames are short-lived message carriers.
 */
public final class HandshakeFrame {
    /** Transport connection setup ({@code local_nic_path}, {@code peer_nic_path}, ...). */
    public static final int CONNECTION = 0;

    /** Fetch the server's current segment descriptor. */
    public static final int METADATA = 1;

    /** A small text notification. */
    public static final int NOTIFY = 2;

    /** Liveness check. */
    public static final int PROBE = 3;

    /** The largest type byte; a larger first payload byte marks a legacy frame. */
    public static final int MAX_TYPE = PROBE;

    private final int type;
    private final boolean legacy;
    private final JsonObject body;

    private HandshakeFrame(int type, boolean legacy, JsonObject body) {
        this.type = type;
        this.legacy = legacy;
        this.body = Objects.requireNonNull(body, "body");
    }

    /** A typed frame. */
    public static HandshakeFrame of(int type, JsonObject body) {
        checkType(type);
        return new HandshakeFrame(type, false, body);
    }

    /** A legacy frame (no type byte, means {@link #CONNECTION}). */
    public static HandshakeFrame legacy(JsonObject body) {
        return new HandshakeFrame(CONNECTION, true, body);
    }

    /** The reply to this frame: same type, and legacy if this frame is legacy. */
    public HandshakeFrame reply(JsonObject replyBody) {
        return new HandshakeFrame(type, legacy, replyBody);
    }

    /** 0 to 3; a legacy frame reports {@link #CONNECTION}. */
    public int type() {
        return type;
    }

    /** Whether the frame has no type byte on the wire. */
    public boolean isLegacy() {
        return legacy;
    }

    /** The JSON body (not a copy). */
    public JsonObject body() {
        return body;
    }

    /** {@code Connection}, {@code Metadata}, {@code Notify}, {@code Probe}, or {@code type N}. */
    public static String typeName(int type) {
        switch (type) {
            case CONNECTION:
                return "Connection";
            case METADATA:
                return "Metadata";
            case NOTIFY:
                return "Notify";
            case PROBE:
                return "Probe";
            default:
                return "type " + type;
        }
    }

    static void checkType(int type) {
        if (type < 0 || type > MAX_TYPE) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "handshake type must be 0 (Connection), 1 (Metadata), 2 (Notify) or 3 (Probe),"
                            + " got "
                            + type);
        }
    }

    @Override
    public String toString() {
        String json = body.toString();
        return typeName(type)
                + (legacy ? " (legacy)" : "")
                + " "
                + (json.length() <= 200 ? json : json.substring(0, 200) + "...");
    }
}
