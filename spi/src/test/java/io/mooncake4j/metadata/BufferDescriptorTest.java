package io.mooncake4j.metadata;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import org.junit.jupiter.api.Test;

class BufferDescriptorTest {
    private static final String EFA_PEER = "{\"name\":\"10.0.0.2:15123\",\"protocol\":\"efa\",\"buffers\":["
            + "{\"name\":\"cpu:0\",\"addr\":4096,\"length\":8192,\"rkey\":[17,18446744073709551615,0],\"lkey\":[5,6,7]},"
            + "{\"name\":\"cpu:0\",\"addr\":65536,\"length\":4096}]}";

    @Test
    void shouldParseKeyArraysOnceAsUnsigned64BitValues() {
        SegmentDescriptor d = SegmentDescriptor.parse(EFA_PEER);
        BufferDescriptor b = d.bufferContaining(4096 + 10, 100);
        assertArrayEquals(new long[] {17, -1L, 0}, b.rkeys(), "u64 max is -1 as a long");
        assertArrayEquals(new long[] {5, 6, 7}, b.lkeys());
        assertSame(b.rkeys(), b.rkeys(), "parsed once, not per call");
        BufferDescriptor plain = d.bufferContaining(65536, 1);
        assertEquals(0, plain.rkeys().length);
        assertEquals(0, plain.lkeys().length);
        assertTrue(SegmentDescriptor.parse(d.toJson().toString()).bufferContaining(4096, 1).rkeys()[1] == -1L,
                "keys survive a round trip");
    }

    @Test
    void shouldRejectKeysThatAreNotAnArrayOfUnsignedIntegers() {
        for (String bad : new String[] {"\"rkey\":17", "\"rkey\":[\"a\"]", "\"lkey\":[-1]", "\"rkey\":[1.5]"}) {
            String json = "{\"name\":\"p\",\"buffers\":[{\"name\":\"cpu:0\",\"addr\":1,\"length\":2," + bad + "}]}";
            MooncakeException e = assertThrows(MooncakeException.class, () -> SegmentDescriptor.parse(json), bad);
            assertEquals(ErrorCode.METADATA, e.code());
            assertTrue(e.getMessage().contains("key"), e.getMessage());
        }
    }
}
