package io.mooncake4j.metadata;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

import org.junit.jupiter.api.Timeout;

import java.nio.charset.StandardCharsets;

/**
 * Coverage-guided fuzzing (Jazzer) of the segment descriptor decoder: a peer's Metadata reply, or a
 * metadata store's value, goes through {@link SegmentDescriptor#parse} / {@link
 * SegmentDescriptor#fromJson}. The input is the JSON text as UTF-8; the committed seeds are under
 * {@code src/test/resources/.../SegmentDescriptorFuzzTestInputs/}.
 */
class SegmentDescriptorFuzzTest {
    /**
     * Any text parses or is refused with {@code METADATA}; a descriptor parsed is written and parsed
     * back to an equal descriptor (EFA key arrays included), and every buffer has a name, an address
     * and a length.
     */
    @DictionaryEntries({
        "\"buffers\":[{",
        "\"name\":\"cpu:0\"",
        "\"addr\":",
        "\"length\":",
        "\"tcp_data_port\":",
        "\"rkey\":[",
        "\"lkey\":[",
        "18446744073709551615",
        "9223372036854775808",
        "-9223372036854775808"
    })
    @Timeout(10) // per input; Jazzer passes it to libFuzzer as -timeout when fuzzing
    @FuzzTest(maxDuration = "30s")
    void shouldParseOrRefuseWithMetadataWhenDescriptorIsArbitrary(byte[] input) {
        SegmentDescriptor d;
        try {
            d = SegmentDescriptor.parse(new String(input, StandardCharsets.UTF_8));
        } catch (MooncakeException e) {
            assertEquals(ErrorCode.METADATA, e.code(), e::getMessage);
            return;
        }
        for (BufferDescriptor b : d.buffers()) {
            assertFalse(b.name().isEmpty(), b::toString);
            assertNotEquals(0L, b.address(), b::toString);
            assertNotEquals(0L, b.length(), b::toString);
            assertNotNull(b.extra(), b::toString);
        }
        checkTransportFields(d);
        SegmentDescriptor again = SegmentDescriptor.parse(d.toString());
        assertSame(d, again);
        assertEquals(d.toJson(), again.toJson());
    }

    /** What the TCP transport reads: a number, the fallback, or a {@code METADATA} refusal. */
    private static void checkTransportFields(SegmentDescriptor d) {
        for (String field : d.extra().keySet()) {
            try {
                d.longField(field, -1);
            } catch (MooncakeException e) {
                assertEquals(ErrorCode.METADATA, e.code(), e::getMessage);
            }
        }
    }

    private static void assertSame(SegmentDescriptor expected, SegmentDescriptor actual) {
        assertEquals(expected.name(), actual.name());
        assertEquals(expected.protocol(), actual.protocol());
        assertEquals(expected.extra(), actual.extra());
        assertEquals(expected.buffers().size(), actual.buffers().size());
        for (int i = 0; i < expected.buffers().size(); i++) {
            BufferDescriptor e = expected.buffers().get(i);
            BufferDescriptor a = actual.buffers().get(i);
            assertEquals(e.name(), a.name());
            assertEquals(e.address(), a.address());
            assertEquals(e.length(), a.length());
            assertEquals(e.extra(), a.extra());
            assertArrayEquals(e.rkeys(), a.rkeys());
            assertArrayEquals(e.lkeys(), a.lkeys());
            assertTrue(e.contains(e.address(), 1) == a.contains(a.address(), 1));
        }
    }
}
