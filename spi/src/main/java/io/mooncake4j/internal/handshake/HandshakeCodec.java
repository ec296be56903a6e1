package io.mooncake4j.internal.handshake;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.StringReader;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Encodes and decodes handshake frames ({@link HandshakeFrame} describes the layout).
 *
 * <p>Decoding is strict: a length of 0 or above the limit, a truncated frame, bytes that are not
 * UTF-8, JSON that is not one object (an array, a string, trailing data, NaN) all raise {@link
 * MalformedFrameException}. Whitespace around the object is allowed: Mooncake's {@code
 * Json::FastWriter} ends its JSON with a newline. The payload buffer grows as bytes arrive, so a
 * peer that announces 1 MiB and sends 10 bytes costs 64 KiB, not 1 MiB.
 */
public final class HandshakeCodec {
    /** Bytes of the length prefix. */
    public static final int LENGTH_BYTES = Long.BYTES;

    /** Mooncake's {@code MC_HANDSHAKE_MAX_LENGTH} default: 1 MiB. */
    public static final int DEFAULT_MAX_FRAME_LENGTH = 1 << 20;

    /**
     * Deepest JSON nesting accepted. Mooncake's deepest message (an RDMA segment descriptor) nests a
     * few levels; Gson writes JSON recursively, so a 100,000-deep object that was merely parsed would
     * overflow the stack the first time anything printed it.
     */
    public static final int MAX_JSON_DEPTH = 64;

    private static final int INITIAL_BUFFER = 64 << 10;
    // Compact, no HTML escaping (Mooncake does none), NaN/Infinity refused rather than written.
    private static final Gson GSON =
            new GsonBuilder()
                    .disableHtmlEscaping()
                    .serializeNulls()
                    .setStrictness(Strictness.STRICT)
                    .create();

    private HandshakeCodec() {}

    /** Called before every blocking read with the bytes of the frame read so far. */
    @FunctionalInterface
    interface ReadGuard {
        ReadGuard NONE = bytesSoFar -> {};

        void beforeRead(long bytesSoFar) throws IOException;
    }

    /** Compact JSON text of {@code body}, as it goes on the wire. */
    public static String toJson(JsonObject body) {
        String json;
        try {
            json = GSON.toJson(body);
        } catch (IllegalArgumentException e) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "handshake body is not valid JSON: " + e.getMessage(),
                    e);
        }
        return escapeLoneSurrogates(json);
    }

    /**
     * Writes each unpaired surrogate as a JSON unicode escape (backslash, u, four hex digits). A peer
     * may send one escaped, and UTF-8 cannot carry it raw (encoding turns it into '?'), so without
     * this a body read from the wire would not encode back to itself. Outside strings JSON is ASCII.
     */
    static String escapeLoneSurrogates(String json) {
        StringBuilder b = null;
        for (int i = 0; i < json.length(); i++) {
            char c = json.charAt(i);
            if (Character.isHighSurrogate(c)
                    && i + 1 < json.length()
                    && Character.isLowSurrogate(json.charAt(i + 1))) {
                if (b != null) {
                    b.append(c).append(json.charAt(i + 1));
                }
                i++;
            } else if (Character.isSurrogate(c)) {
                if (b == null) {
                    b = new StringBuilder(json.length() + 16).append(json, 0, i);
                }
                b.append(String.format("\\u%04x", (int) c));
            } else if (b != null) {
                b.append(c);
            }
        }
        return b == null ? json : b.toString();
    }

    /** The whole frame: length prefix, type byte unless legacy, JSON. */
    public static byte[] encode(HandshakeFrame frame) {
        byte[] json = toJson(frame.body()).getBytes(StandardCharsets.UTF_8);
        int typeBytes = frame.isLegacy() ? 0 : 1;
        ByteBuffer buf =
                ByteBuffer.allocate(LENGTH_BYTES + typeBytes + json.length)
                        .order(ByteOrder.LITTLE_ENDIAN);
        buf.putLong(typeBytes + json.length);
        if (!frame.isLegacy()) {
            buf.put((byte) frame.type());
        }
        buf.put(json);
        return buf.array();
    }

    /**
     * Encodes and writes one frame.
     *
     * @throws MooncakeException {@code INVALID_ARGUMENT} if the frame exceeds {@code
     *     maxFrameLength} (the peer would reject it), before writing anything
     */
    public static void write(OutputStream out, HandshakeFrame frame, int maxFrameLength)
            throws IOException {
        byte[] bytes = encode(frame);
        long length = bytes.length - LENGTH_BYTES;
        if (length > maxFrameLength) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    HandshakeFrame.typeName(frame.type())
                            + " frame of "
                            + length
                            + " bytes exceeds the handshake limit of "
                            + maxFrameLength
                            + " bytes (MC_HANDSHAKE_MAX_LENGTH)");
        }
        out.write(bytes);
        out.flush();
    }

    /**
     * Reads one frame, blocking.
     *
     * @return the frame, or null if the stream ended cleanly before its first byte
     * @throws MalformedFrameException if the bytes are not a valid frame (including a truncated
     *     one)
     */
    public static HandshakeFrame read(InputStream in, int maxFrameLength) throws IOException {
        return read(in, maxFrameLength, ReadGuard.NONE);
    }

    static HandshakeFrame read(InputStream in, int maxFrameLength, ReadGuard guard)
            throws IOException {
        byte[] header = new byte[LENGTH_BYTES];
        int n = readUpTo(in, header, 0, LENGTH_BYTES, 0, guard);
        if (n == 0) {
            return null;
        }
        if (n < LENGTH_BYTES) {
            throw new MalformedFrameException(
                    "connection closed after " + n + " of the " + LENGTH_BYTES + " length bytes");
        }
        long length = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN).getLong();
        checkLength(length, maxFrameLength);
        int len = (int) length;
        byte[] payload = new byte[Math.min(len, INITIAL_BUFFER)];
        int got = 0;
        while (got < len) {
            if (got == payload.length) {
                payload = Arrays.copyOf(payload, (int) Math.min(len, 2L * payload.length));
            }
            int r = readUpTo(in, payload, got, payload.length - got, LENGTH_BYTES + got, guard);
            if (r == 0) {
                throw new MalformedFrameException(
                        "connection closed after " + got + " of " + len + " payload bytes");
            }
            got += r;
        }
        return decodePayload(payload);
    }

    /**
     * Checks a frame's length prefix.
     *
     * @throws MalformedFrameException for 0 or more than {@code maxFrameLength} (as unsigned)
     */
    public static void checkLength(long length, int maxFrameLength) throws MalformedFrameException {
        if (length == 0) {
            throw new MalformedFrameException("frame length 0");
        }
        if (Long.compareUnsigned(length, maxFrameLength) > 0) {
            throw new MalformedFrameException(
                    "frame length "
                            + Long.toUnsignedString(length)
                            + " exceeds the limit of "
                            + maxFrameLength
                            + " bytes (MC_HANDSHAKE_MAX_LENGTH)");
        }
    }

    /**
     * Decodes a payload (what follows the length prefix): a type byte 0-3 then JSON, or, if the
     * first byte is greater than 3, legacy JSON meaning Connection.
     */
    public static HandshakeFrame decodePayload(byte[] payload) throws MalformedFrameException {
        if (payload.length == 0) {
            throw new MalformedFrameException("frame length 0");
        }
        int first = payload[0] & 0xFF;
        if (first <= HandshakeFrame.MAX_TYPE) {
            return HandshakeFrame.of(first, parseObject(payload, 1, payload.length - 1));
        }
        return HandshakeFrame.legacy(parseObject(payload, 0, payload.length));
    }

    /** Parses exactly one JSON object from UTF-8 bytes. */
    public static JsonObject parseObject(byte[] bytes, int offset, int length)
            throws MalformedFrameException {
        checkDepth(bytes, offset, length);
        String text;
        try {
            text =
                    StandardCharsets.UTF_8
                            .newDecoder()
                            .onMalformedInput(CodingErrorAction.REPORT)
                            .onUnmappableCharacter(CodingErrorAction.REPORT)
                            .decode(ByteBuffer.wrap(bytes, offset, length))
                            .toString();
        } catch (CharacterCodingException e) {
            throw new MalformedFrameException("payload is not UTF-8 text", e);
        }
        JsonElement element;
        try {
            JsonReader reader = new JsonReader(new StringReader(text));
            reader.setStrictness(Strictness.STRICT);
            element = JsonParser.parseReader(reader);
            if (!element.isJsonNull() && reader.peek() != JsonToken.END_DOCUMENT) {
                throw new MalformedFrameException(
                        "trailing data after the JSON value: " + abbreviate(text));
            }
        } catch (JsonParseException | IOException | IllegalStateException | StackOverflowError e) {
            throw new MalformedFrameException("payload is not valid JSON: " + abbreviate(text), e);
        }
        if (!element.isJsonObject()) {
            throw new MalformedFrameException(
                    "payload must be a JSON object, got "
                            + kind(element)
                            + ": "
                            + abbreviate(text));
        }
        return element.getAsJsonObject();
    }

    /**
     * Refuses JSON nested deeper than {@link #MAX_JSON_DEPTH}, before any parser sees it. Brackets
     * inside strings do not count; multi-byte UTF-8 never contains an ASCII byte, so bytes will do.
     */
    static void checkDepth(byte[] bytes, int offset, int length) throws MalformedFrameException {
        int depth = 0;
        boolean inString = false;
        for (int i = offset, end = offset + length; i < end; i++) {
            byte b = bytes[i];
            if (inString) {
                if (b == '\\') {
                    i++; // skip the escaped character
                } else if (b == '"') {
                    inString = false;
                }
            } else if (b == '"') {
                inString = true;
            } else if (b == '{' || b == '[') {
                if (++depth > MAX_JSON_DEPTH) {
                    throw new MalformedFrameException(
                            "JSON nested deeper than " + MAX_JSON_DEPTH + " levels");
                }
            } else if (b == '}' || b == ']') {
                depth--;
            }
        }
    }

    /** Reads until {@code len} bytes or end of stream; returns how many were read. */
    private static int readUpTo(
            InputStream in, byte[] buf, int off, int len, long frameBytesSoFar, ReadGuard guard)
            throws IOException {
        int got = 0;
        while (got < len) {
            guard.beforeRead(frameBytesSoFar + got);
            int r = in.read(buf, off + got, len - got);
            if (r < 0) {
                break;
            }
            got += r;
        }
        return got;
    }

    /** What a JSON value is, for messages: "an object", "an array", "a string", ... */
    static String kind(JsonElement e) {
        if (e.isJsonObject()) {
            return "an object";
        }
        if (e.isJsonArray()) {
            return "an array";
        }
        if (e.isJsonNull()) {
            return "nothing (or null)";
        }
        return "a " + (e.getAsJsonPrimitive().isString() ? "string" : "scalar");
    }

    /** Peer text made safe for a log line: at most 120 chars, control characters escaped. */
    static String abbreviate(String s) {
        String head = s.length() <= 120 ? s : s.substring(0, 120);
        StringBuilder b = new StringBuilder(head.length() + 16);
        for (int i = 0; i < head.length(); i++) {
            char c = head.charAt(i);
            if (c < 0x20 || c == 0x7F) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        if (head.length() < s.length()) {
            b.append("... (").append(s.length()).append(" chars)");
        }
        return b.toString();
    }
}
