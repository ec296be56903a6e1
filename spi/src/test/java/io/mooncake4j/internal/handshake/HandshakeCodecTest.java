package io.mooncake4j.internal.handshake;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;

/** Byte-level checks of the frame format against the facts in MOONCAKE_WIRE.md. */
class HandshakeCodecTest {
    private static final int MAX = HandshakeCodec.DEFAULT_MAX_FRAME_LENGTH;

    private static byte[] hex(String s) {
        return HexFormat.of().parseHex(s.replace(" ", ""));
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            out.writeBytes(p);
        }
        return out.toByteArray();
    }

    /** A length prefix followed by {@code payload}. */
    private static byte[] framed(byte[] payload) {
        return concat(le64(payload.length), payload);
    }

    private static byte[] le64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    private static HandshakeFrame read(byte[] bytes) throws IOException {
        return HandshakeCodec.read(new ByteArrayInputStream(bytes), MAX);
    }

    private static MalformedFrameException rejected(byte[] bytes) {
        return assertThrows(MalformedFrameException.class, () -> read(bytes));
    }

    @Test
    void shouldEncodeProbeRequestAsGoldenBytes() {
        byte[] bytes =
                HandshakeCodec.encode(
                        HandshakeFrame.of(HandshakeFrame.PROBE, HandshakeMessages.probe()));
        assertArrayEquals(hex("03 00 00 00 00 00 00 00 03 7B 7D"), bytes);
    }

    @Test
    void shouldEncodeProbeReplyAsGoldenBytes() {
        byte[] bytes =
                HandshakeCodec.encode(
                        HandshakeFrame.of(HandshakeFrame.PROBE, HandshakeMessages.probeOk()));
        assertArrayEquals(
                concat(hex("15 00 00 00 00 00 00 00 03"), ascii("{\"status\":\"success\"}")),
                bytes);
        assertEquals(
                HandshakeMessages.PROBE_OK_JSON,
                HandshakeCodec.toJson(HandshakeMessages.probeOk()));
    }

    @Test
    void shouldEncodeNotifyReplyExactly() {
        assertEquals(
                "{\"name\":\"\",\"notify_msg\":\"success\"}",
                HandshakeCodec.toJson(HandshakeMessages.notifyOk()));
        assertEquals(
                HandshakeMessages.NOTIFY_OK_JSON,
                HandshakeCodec.toJson(HandshakeMessages.notifyOk()));
        byte[] bytes =
                HandshakeCodec.encode(
                        HandshakeFrame.of(HandshakeFrame.NOTIFY, HandshakeMessages.notifyOk()));
        assertArrayEquals(
                concat(hex("23 00 00 00 00 00 00 00 02"), ascii(HandshakeMessages.NOTIFY_OK_JSON)),
                bytes);
    }

    @Test
    void shouldEncodeNotifyRequestWithNameThenMessage() {
        byte[] bytes =
                HandshakeCodec.encode(
                        HandshakeFrame.of(
                                HandshakeFrame.NOTIFY,
                                HandshakeMessages.notify("10.0.0.1:15000", "hello")));
        assertArrayEquals(
                concat(
                        hex("2F 00 00 00 00 00 00 00 02"),
                        ascii("{\"name\":\"10.0.0.1:15000\",\"notify_msg\":\"hello\"}")),
                bytes);
    }

    @Test
    void shouldDecodeEachTypeFromGoldenBytes() throws IOException {
        for (int type = 0; type <= 3; type++) {
            HandshakeFrame f =
                    read(
                            concat(
                                    hex("03 00 00 00 00 00 00 00"),
                                    new byte[] {(byte) type},
                                    ascii("{}")));
            assertEquals(type, f.type());
            assertFalse(f.isLegacy());
            assertEquals(new JsonObject(), f.body());
        }
    }

    @Test
    void shouldEncodeLoneSurrogateAsEscapeWhenPeerSentOne() throws IOException {
        // found by HandshakeFrameFuzzTest: UTF-8 made the lone surrogate '?', changing the text
        String json = "{\"m\":\"a\\udc00b\\ud83d\\ude00\"}";
        HandshakeFrame f = read(framed(concat(new byte[] {HandshakeFrame.NOTIFY}, ascii(json))));
        assertEquals("a\udc00b\ud83d\ude00", f.body().get("m").getAsString());
        assertArrayEquals(
                concat(
                        hex("15 00 00 00 00 00 00 00 02"),
                        ascii("{\"m\":\"a\\udc00b"),
                        hex("F0 9F 98 80"),
                        ascii("\"}")),
                HandshakeCodec.encode(f));
    }

    @Test
    void shouldDecodeLegacyFrameAsConnection() throws IOException {
        HandshakeFrame f =
                read(concat(hex("12 00 00 00 00 00 00 00"), ascii("{\"name\":\"segment\"}")));
        assertEquals(HandshakeFrame.CONNECTION, f.type());
        assertTrue(f.isLegacy());
        assertEquals("segment", f.body().get("name").getAsString());
    }

    @Test
    void shouldAnswerLegacyFrameWithLegacyFrame() throws IOException {
        HandshakeFrame request = read(framed(ascii("{\"name\":\"segment\"}")));
        JsonObject body = new JsonObject();
        body.addProperty("reply_msg", "");
        byte[] reply = HandshakeCodec.encode(request.reply(body));
        // No type byte: a pre-type-byte peer parses the whole payload as JSON.
        assertArrayEquals(
                concat(hex("10 00 00 00 00 00 00 00"), ascii("{\"reply_msg\":\"\"}")), reply);
        assertTrue(read(reply).isLegacy());
    }

    @Test
    void shouldReplyWithTheRequestType() {
        HandshakeFrame request = HandshakeFrame.of(HandshakeFrame.METADATA, new JsonObject());
        byte[] reply = HandshakeCodec.encode(request.reply(new JsonObject()));
        assertArrayEquals(hex("03 00 00 00 00 00 00 00 01 7B 7D"), reply);
    }

    @Test
    void shouldAcceptMooncakeFastWriterTrailingNewline() throws IOException {
        HandshakeFrame f =
                read(framed(concat(new byte[] {1}, ascii("{\"name\":\"a:1\",\"buffers\":[]}\n"))));
        assertEquals(HandshakeFrame.METADATA, f.type());
        assertEquals("a:1", f.body().get("name").getAsString());
    }

    @Test
    void shouldRoundTripUnicodeAndU64() throws IOException {
        JsonObject body = new JsonObject();
        body.addProperty("name", "héllo \u2028 \"quoted\" <tag> \\");
        body.add("addr", JsonParser.parseString("18446744073709551615"));
        HandshakeFrame f =
                read(HandshakeCodec.encode(HandshakeFrame.of(HandshakeFrame.METADATA, body)));
        assertEquals(body, f.body());
        assertEquals("18446744073709551615", f.body().get("addr").getAsBigInteger().toString());
        assertTrue(
                HandshakeCodec.toJson(body).contains("<tag>"), "no HTML escaping, like Mooncake");
    }

    @Test
    void shouldRejectLengthZero() {
        assertTrue(rejected(hex("00 00 00 00 00 00 00 00")).getMessage().contains("length 0"));
    }

    @Test
    void shouldRejectLengthOverTheLimit() {
        assertTrue(rejected(le64(2L << 20)).getMessage().contains("2097152"));
        assertTrue(
                rejected(hex("00 00 00 00 00 00 00 80"))
                        .getMessage()
                        .contains("9223372036854775808"));
        assertTrue(
                rejected(hex("FF FF FF FF FF FF FF FF"))
                        .getMessage()
                        .contains("18446744073709551615"));
        rejected(le64(MAX + 1L));
    }

    @Test
    void shouldAcceptLengthAtTheLimit() throws IOException {
        byte[] json = new byte[MAX - 1];
        Arrays.fill(json, (byte) ' ');
        json[0] = '{';
        json[json.length - 1] = '}';
        HandshakeFrame f = read(framed(concat(new byte[] {3}, json)));
        assertEquals(HandshakeFrame.PROBE, f.type());
    }

    @Test
    void shouldRejectPayloadsThatAreNotOneJsonObject() {
        for (String bad :
                new String[] {
                    "{",
                    "{\"a\":",
                    "[1,2]",
                    "\"text\"",
                    "42",
                    "null",
                    "",
                    " ",
                    "{}{}",
                    "{} x",
                    "{a:1}",
                    "{'a':1}",
                    "{\"a\":NaN}",
                    "{\"a\":1,}",
                    "/*c*/{}"
                }) {
            byte[] bytes = framed(concat(new byte[] {1}, ascii(bad)));
            assertThrows(MalformedFrameException.class, () -> read(bytes), bad);
        }
        assertTrue(
                rejected(framed(concat(new byte[] {1}, ascii("[1,2]"))))
                        .getMessage()
                        .contains("array"));
    }

    @Test
    void shouldKeepTheLastOfDuplicateKeysLikeJsoncpp() throws IOException {
        HandshakeFrame f = read(framed(concat(new byte[] {1}, ascii("{\"a\":1,\"a\":2}"))));
        assertEquals(2, f.body().get("a").getAsInt());
    }

    @Test
    void shouldRejectUnknownTypeByteAsBadLegacyJson() {
        // 0x07 is above the last type, so this is a legacy frame whose JSON starts with 0x07.
        rejected(framed(concat(new byte[] {7}, ascii("{}"))));
        rejected(framed(concat(new byte[] {(byte) 0xFF}, ascii("{}"))));
    }

    @Test
    void shouldRejectTypeByteWithoutJson() {
        rejected(hex("01 00 00 00 00 00 00 00 03"));
    }

    @Test
    void shouldRejectInvalidUtf8() {
        assertTrue(
                rejected(
                                framed(
                                        concat(
                                                new byte[] {1},
                                                ascii("{\"a\":\""),
                                                hex("C3 28"),
                                                ascii("\"}"))))
                        .getMessage()
                        .contains("UTF-8"));
    }

    @Test
    void shouldRejectDeepNestingWithoutBlowingTheStack() {
        byte[] deep = new byte[200_000];
        Arrays.fill(deep, (byte) '[');
        rejected(framed(concat(new byte[] {1}, deep)));
        byte[] deepObjects = ascii("{\"a\":".repeat(100_000));
        rejected(framed(concat(new byte[] {1}, deepObjects)));
    }

    @Test
    void shouldReturnNullOnCleanEndOfStream() throws IOException {
        assertNull(read(new byte[0]));
    }

    @Test
    void shouldRejectTruncatedFrames() {
        assertTrue(rejected(hex("03 00 00")).getMessage().contains("3 of the 8"));
        assertTrue(rejected(hex("0A 00 00 00 00 00 00 00 01 7B")).getMessage().contains("2 of 10"));
    }

    @Test
    void shouldReadConsecutiveFramesFromOneStream() throws IOException {
        byte[] two =
                concat(
                        HandshakeCodec.encode(
                                HandshakeFrame.of(HandshakeFrame.PROBE, HandshakeMessages.probe())),
                        HandshakeCodec.encode(
                                HandshakeFrame.of(
                                        HandshakeFrame.NOTIFY,
                                        HandshakeMessages.notify("a", "b"))));
        ByteArrayInputStream in = new ByteArrayInputStream(two);
        assertEquals(HandshakeFrame.PROBE, HandshakeCodec.read(in, MAX).type());
        HandshakeFrame n = HandshakeCodec.read(in, MAX);
        assertEquals(
                new HandshakeMessages.Notify("a", "b"), HandshakeMessages.parseNotify(n.body()));
        assertNull(HandshakeCodec.read(in, MAX));
    }

    @Test
    void shouldRefuseToWriteAFrameOverTheLimit() {
        JsonObject big = new JsonObject();
        big.addProperty("x", "y".repeat(200));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        MooncakeException e =
                assertThrows(
                        MooncakeException.class,
                        () ->
                                HandshakeCodec.write(
                                        out, HandshakeFrame.of(HandshakeFrame.METADATA, big), 100));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
        assertEquals(0, out.size());
    }

    @Test
    void shouldRefuseNaNInOutgoingJson() {
        JsonObject o = new JsonObject();
        o.addProperty("x", Double.NaN);
        assertEquals(
                ErrorCode.INVALID_ARGUMENT,
                assertThrows(MooncakeException.class, () -> HandshakeCodec.toJson(o)).code());
    }

    @Test
    void shouldRejectTypesOutsideZeroToThree() {
        assertEquals(
                ErrorCode.INVALID_ARGUMENT,
                assertThrows(MooncakeException.class, () -> HandshakeFrame.of(4, new JsonObject()))
                        .code());
        assertThrows(MooncakeException.class, () -> HandshakeFrame.of(-1, new JsonObject()));
    }

    @Test
    void shouldBuildAndReadMessages() {
        assertTrue(HandshakeMessages.isNotifyOk(HandshakeMessages.notifyOk()));
        assertTrue(HandshakeMessages.isProbeOk(HandshakeMessages.probeOk()));
        assertFalse(HandshakeMessages.isProbeOk(new JsonObject()));
        assertEquals("", HandshakeMessages.replyMessage(new JsonObject()));
        assertEquals(
                "busy",
                HandshakeMessages.replyMessage(HandshakeMessages.connectionRefused("busy")));
        assertFalse(
                HandshakeMessages.replyMessage(HandshakeMessages.connectionRefused("")).isEmpty());
        MooncakeException e =
                assertThrows(
                        MooncakeException.class,
                        () ->
                                HandshakeMessages.parseNotify(
                                        JsonParser.parseString("{\"name\":1}").getAsJsonObject()));
        assertEquals(ErrorCode.METADATA, e.code());
        // Fresh objects: changing one reply must not change the next.
        HandshakeMessages.notifyOk().addProperty("x", 1);
        assertEquals(
                HandshakeMessages.NOTIFY_OK_JSON,
                HandshakeCodec.toJson(HandshakeMessages.notifyOk()));
    }

    private static byte[] nested(int depth, String inner) {
        return ("[".repeat(depth - 1) + "{\"x\":\"" + inner + "\"}" + "]".repeat(depth - 1))
                .getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void shouldRefuseJsonNestedDeeperThanTheLimit() throws MalformedFrameException {
        byte[] atLimit = nested(HandshakeCodec.MAX_JSON_DEPTH, "ok");
        HandshakeCodec.checkDepth(atLimit, 0, atLimit.length);
        byte[] over = nested(HandshakeCodec.MAX_JSON_DEPTH + 1, "ok");
        MalformedFrameException e =
                assertThrows(
                        MalformedFrameException.class,
                        () -> HandshakeCodec.parseObject(over, 0, over.length));
        assertTrue(e.getMessage().contains("nested deeper than 64"), e.getMessage());
        // Brackets inside strings, escaped quotes included, are text, not nesting.
        String text = "\\\"" + "[{".repeat(200);
        byte[] quoted = ("{\"x\":\"" + text + "\"}").getBytes(StandardCharsets.UTF_8);
        assertEquals(
                "\"" + "[{".repeat(200),
                HandshakeCodec.parseObject(quoted, 0, quoted.length).get("x").getAsString());
    }

    @Test
    void shouldNotQuoteTheRequestWhenANotifyFieldIsMissing() {
        JsonObject request = new JsonObject();
        request.addProperty("notify_msg", "secret-token-123");
        request.add("name", new JsonObject());
        MooncakeException e =
                assertThrows(MooncakeException.class, () -> HandshakeMessages.parseNotify(request));
        assertEquals(ErrorCode.METADATA, e.code());
        assertTrue(e.getMessage().contains("'name', got an object"), e.getMessage());
        assertFalse(e.getMessage().contains("secret-token-123"), e.getMessage());
        request.remove("name");
        assertTrue(
                assertThrows(MooncakeException.class, () -> HandshakeMessages.parseNotify(request))
                        .getMessage()
                        .contains("which is missing"));
    }
}
