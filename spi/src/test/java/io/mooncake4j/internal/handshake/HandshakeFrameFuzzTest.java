package io.mooncake4j.internal.handshake;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Arrays;

/**
 * Coverage-guided fuzzing (Jazzer) of the handshake frame parser: what a peer's bytes can do to
 * {@link HandshakeCodec#read} and to the readers of {@link HandshakeMessages}. The input is a raw
 * byte stream of length-prefixed frames; the committed seeds are under {@code
 * src/test/resources/.../HandshakeFrameFuzzTestInputs/}. docs/testing.md says how to fuzz longer.
 */
class HandshakeFrameFuzzTest {
    /** Small, so that the fuzzer reaches the length check with inputs of a few bytes. */
    private static final int MAX_FRAME = 4096;

    /**
     * Every frame of the stream is read, refused with {@link MalformedFrameException}, or the stream
     * ends cleanly; a frame read is re-encoded to the same frame, and its readers answer or refuse
     * with {@code METADATA}. Any other throwable (a RuntimeException from Gson, StackOverflowError,
     * OutOfMemoryError) is a finding.
     */
    @Timeout(10) // per input; Jazzer passes it to libFuzzer as -timeout when fuzzing
    @FuzzTest(maxDuration = "30s")
    void shouldReadOrRefuseFramesWhenPeerSendsArbitraryBytes(byte[] stream) throws IOException {
        ByteArrayInputStream in = new ByteArrayInputStream(stream);
        while (true) {
            HandshakeFrame frame;
            try {
                frame = HandshakeCodec.read(in, MAX_FRAME);
            } catch (MalformedFrameException e) {
                assertNotNull(e.getMessage(), "a refusal says why");
                return;
            }
            if (frame == null) {
                assertEquals(0, in.available(), "null only at the end of the stream");
                return;
            }
            checkReencodes(frame);
            checkReaders(frame.body());
        }
    }

    private static void checkReencodes(HandshakeFrame frame) throws MalformedFrameException {
        assertTrue(frame.type() >= 0 && frame.type() <= HandshakeFrame.MAX_TYPE, frame::toString);
        assertTrue(depth(frame.body()) <= HandshakeCodec.MAX_JSON_DEPTH, "depth bound holds");
        byte[] bytes = HandshakeCodec.encode(frame);
        HandshakeFrame again =
                HandshakeCodec.decodePayload(
                        Arrays.copyOfRange(bytes, HandshakeCodec.LENGTH_BYTES, bytes.length));
        assertEquals(frame.type(), again.type());
        assertEquals(frame.isLegacy(), again.isLegacy());
        assertEquals(frame.body(), again.body());
    }

    private static void checkReaders(JsonObject body) {
        try {
            HandshakeMessages.Notify n = HandshakeMessages.parseNotify(body);
            assertEquals(body.get(HandshakeMessages.NOTIFY_NAME).getAsString(), n.sender());
            assertEquals(body.get(HandshakeMessages.NOTIFY_MSG).getAsString(), n.message());
        } catch (MooncakeException e) {
            assertEquals(ErrorCode.METADATA, e.code(), e::getMessage);
        }
        assertEquals(
                isString(body.get(HandshakeMessages.STATUS), HandshakeMessages.SUCCESS),
                HandshakeMessages.isProbeOk(body));
        assertEquals(
                isString(body.get(HandshakeMessages.NOTIFY_MSG), HandshakeMessages.SUCCESS),
                HandshakeMessages.isNotifyOk(body));
        JsonElement reply = body.get(HandshakeMessages.REPLY_MSG);
        assertEquals(
                isString(reply, null) ? reply.getAsString() : "",
                HandshakeMessages.replyMessage(body));
    }

    /** Nesting depth of objects and arrays: {@code {}} is 1. */
    private static int depth(JsonElement e) {
        int inner = 0;
        if (e.isJsonObject()) {
            for (JsonElement v : e.getAsJsonObject().asMap().values()) {
                inner = Math.max(inner, depth(v));
            }
        } else if (e.isJsonArray()) {
            for (JsonElement v : e.getAsJsonArray()) {
                inner = Math.max(inner, depth(v));
            }
        } else {
            return 0;
        }
        return inner + 1;
    }

    /** Whether {@code e} is a JSON string (equal to {@code value} unless that is null). */
    private static boolean isString(JsonElement e, String value) {
        return e != null
                && e.isJsonPrimitive()
                && e.getAsJsonPrimitive().isString()
                && (value == null || value.equals(e.getAsString()));
    }
}
