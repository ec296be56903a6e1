package io.mooncake4j.djl.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.DataType;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import org.junit.jupiter.api.Test;

class KvLayoutTest {
    private final KvLayout layout = new KvLayout(3, 2, 8, 4, 10, DataType.FLOAT32);

    @Test
    void shouldPlaceBlocksLayerMajorThenKvThenBlock() {
        int bb = 4 * 2 * 8 * 4;
        assertEquals(bb, layout.blockBytes());
        assertEquals(16, layout.kvDim());
        assertEquals(10L * bb, layout.partBytes());
        assertEquals(3 * 2 * 10L * bb, layout.totalBytes());
        assertEquals(0, layout.blockOffset(0, KvPart.KEY, 0));
        assertEquals(3L * bb, layout.blockOffset(0, KvPart.KEY, 3));
        assertEquals(10L * bb, layout.blockOffset(0, KvPart.VALUE, 0));
        assertEquals((2 * 10L + 7) * bb, layout.blockOffset(1, KvPart.KEY, 7));
        assertEquals(((2 * 2 + 1) * 10L + 9) * bb, layout.blockOffset(2, KvPart.VALUE, 9));
        assertEquals(layout.totalBytes(), layout.blockOffset(2, KvPart.VALUE, 9) + bb);
    }

    @Test
    void shouldMakeConsecutiveBlocksOfOnePartAdjacent() {
        for (int l = 0; l < 3; l++) {
            for (KvPart p : KvPart.values()) {
                for (int b = 0; b + 1 < 10; b++) {
                    assertEquals(layout.blockOffset(l, p, b) + layout.blockBytes(), layout.blockOffset(l, p, b + 1));
                }
            }
        }
    }

    @Test
    void shouldRoundTokensUpToBlocks() {
        assertEquals(0, layout.blocksFor(0));
        assertEquals(1, layout.blocksFor(1));
        assertEquals(1, layout.blocksFor(4));
        assertEquals(2, layout.blocksFor(5));
    }

    @Test
    void shouldRoundTripJsonAndIgnorePoolSizeForCompatibility() {
        KvLayout back = KvLayout.fromJson(layout.toJson());
        assertEquals(layout, back);
        assertTrue(layout.isCompatible(layout.withNumBlocks(99)));
        assertFalse(layout.isCompatible(new KvLayout(3, 2, 8, 8, 10, DataType.FLOAT32)));
        assertFalse(layout.isCompatible(new KvLayout(3, 2, 8, 4, 10, DataType.FLOAT16)));
    }

    @Test
    void shouldRefuseDtypesDjlCannotWrapWithAMessage() {
        for (DataType t : new DataType[] {DataType.BFLOAT16, DataType.INT16, DataType.UINT8, DataType.UINT16,
                DataType.UINT32, DataType.UINT64, DataType.INT32}) {
            KvException e = assertThrows(KvException.class, () -> new KvLayout(1, 1, 2, 1, 1, t));
            assertEquals(KvError.UNSUPPORTED_DTYPE, e.error());
            assertTrue(e.getMessage().contains("FLOAT32 or FLOAT16"), e.getMessage());
        }
        assertEquals(KvError.UNSUPPORTED_DTYPE,
                assertThrows(KvException.class, () -> KvLayout.parseDataType("bf16")).error());
        assertEquals(KvError.UNSUPPORTED_DTYPE,
                assertThrows(KvException.class, () -> KvLayout.parseDataType("bfloat16")).error());
        assertEquals(DataType.FLOAT16, KvLayout.parseDataType("fp16"));
        assertEquals(DataType.FLOAT32, KvLayout.parseDataType("FLOAT32"));
    }
}
