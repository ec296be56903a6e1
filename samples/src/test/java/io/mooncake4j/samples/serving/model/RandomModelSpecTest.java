package io.mooncake4j.samples.serving.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class RandomModelSpecTest {
    @Test
    void shouldParseThePositionalFormWithDefaults() {
        RandomModelSpec s = RandomModelSpec.parse("32,8,128");
        assertEquals(32, s.layers());
        assertEquals(8, s.kvHeads());
        assertEquals(128, s.headSize());
        assertEquals(8, s.heads());
        assertEquals(1024, s.dim());
        assertEquals(256, s.hiddenDim());
        assertEquals(RandomModelSpec.DEFAULT_SEQ_LEN, s.seqLen());
        assertEquals(256 << 10, s.kvBytesPerToken());
        assertEquals("random-32x8x128", s.name());
    }

    @Test
    void shouldParseKeyValuesAndRoundTripTheCanonicalForm() {
        RandomModelSpec s = RandomModelSpec.parse("layers=4, kv_heads=2, head_size=16, heads=4, hidden_dim=48, seq_len=64");
        assertEquals(new RandomModelSpec(4, 2, 16, 4, 48, 64), s);
        assertEquals(s, RandomModelSpec.parse(s.format()));
        assertEquals(64, s.config(259).dim());
        assertEquals(259, s.config(259).vocabSize());
    }

    @Test
    void shouldUseTheDefaultGeometryWhenEmpty() {
        assertEquals(RandomModelSpec.parse(RandomModelSpec.DEFAULT), RandomModelSpec.parse(""));
    }

    @Test
    void shouldRejectBadGeometries() {
        assertThrows(IllegalArgumentException.class, () -> RandomModelSpec.parse("32,8"));
        assertThrows(IllegalArgumentException.class, () -> RandomModelSpec.parse("32,8,127"));
        assertThrows(IllegalArgumentException.class, () -> RandomModelSpec.parse("32,3,128,4"));
        assertThrows(IllegalArgumentException.class, () -> RandomModelSpec.parse("32,x,128"));
        assertThrows(IllegalArgumentException.class, () -> RandomModelSpec.parse("layers=2,colour=3"));
        assertThrows(IllegalArgumentException.class, () -> RandomModelSpec.parse("0,1,2"));
    }
}
