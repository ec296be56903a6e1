package io.mooncake4j.djl.llama;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;

/** Random models: determinism, a run.c port as reference, checkpoint formats, KV cache layout. */
class LlamaModelTest {

    private static NDManager manager;

    @BeforeAll
    static void engine() {
        manager = TestEngine.newManager();
    }

    @AfterAll
    static void close() {
        manager.close();
    }

    /** Small configurations covering MHA, GQA, MQA, and a separate classifier. */
    private static LlamaConfig small(int variant) {
        switch (variant) {
            case 0:
                return new LlamaConfig(32, 48, 2, 4, 4, 40, 16, true);
            case 1:
                return new LlamaConfig(48, 96, 3, 6, 2, 50, 16, false);
            case 2:
                return new LlamaConfig(64, 80, 2, 8, 1, 33, 16, true);
            default:
                throw new IllegalArgumentException();
        }
    }

    @Test
    void sameSeedGivesTheSameModelAndOutput() {
        LlamaConfig c = small(1);
        try (LlamaWeights a = LlamaWeights.random(c, 7, manager);
                LlamaWeights b = LlamaWeights.random(c, 7, manager);
                LlamaWeights other = LlamaWeights.random(c, 8, manager)) {
            assertArrayEquals(a.layer(2).w2().toFloatArray(), b.layer(2).w2().toFloatArray());
            assertArrayEquals(a.classifier().toFloatArray(), b.classifier().toFloatArray());
            float[] norm = a.layer(0).rmsAtt().toFloatArray();
            assertTrue(allEqual(norm, 1f), "RMSNorm weights are 1");
            float[] wq = a.layer(0).wq().toFloatArray();
            double sd = Math.sqrt(Arrays.stream(toDouble(wq)).map(x -> x * x).average().orElse(0));
            assertEquals(0.02, sd, 0.003);
            int[] tokensA = greedy(a, 12);
            assertArrayEquals(tokensA, greedy(b, 12));
            assertFalse(Arrays.equals(tokensA, greedy(other, 12)));
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2})
    void matchesAPortOfRunC(int variant) {
        LlamaConfig c = small(variant);
        try (LlamaWeights w = LlamaWeights.random(c, 100 + variant, manager);
                LlamaModel model = new LlamaModel(w);
                ContiguousKvCache stepwise = model.newCache(c.seqLen());
                ContiguousKvCache batched = model.newCache(c.seqLen())) {
            ReferenceLlama reference = new ReferenceLlama(w);
            SplittableRandom random = new SplittableRandom(variant);
            int[] tokens = random.ints(c.seqLen(), 0, c.vocabSize()).toArray();
            float[][] expected = new float[tokens.length][];
            for (int pos = 0; pos < tokens.length; pos++) {
                expected[pos] = reference.forward(tokens[pos], pos);
                assertClose(expected[pos], model.step(tokens[pos], pos, stepwise), "step " + pos);
            }
            try (NDManager m = manager.newSubManager()) {
                float[] all = model.forwardAll(tokens, 0, batched, m).toFloatArray();
                for (int pos = 0; pos < tokens.length; pos++) {
                    assertClose(
                            expected[pos],
                            Arrays.copyOfRange(all, pos * c.vocabSize(), (pos + 1) * c.vocabSize()),
                            "batched position " + pos);
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1})
    void checkpointsRoundTrip(int variant, @TempDir Path tmp) throws IOException {
        LlamaConfig c = small(variant);
        Path legacy = tmp.resolve("legacy.bin");
        Path v1 = tmp.resolve("v1.bin");
        try (LlamaWeights w = LlamaWeights.random(c, 5, manager)) {
            Checkpoints.writeLegacy(w, legacy);
            Checkpoints.writeVersion1(w, v1);
            assertEquals(c, LlamaWeights.readConfig(legacy));
            assertEquals(c, LlamaWeights.readConfig(v1));
            for (Path file : new Path[] {legacy, v1}) {
                try (LlamaWeights read = LlamaWeights.load(file, manager)) {
                    assertEquals(c, read.config());
                    assertSame(w.tokenEmbedding(), read.tokenEmbedding());
                    assertSame(w.classifier(), read.classifier());
                    assertSame(w.rmsFinal(), read.rmsFinal());
                    assertEquals(c.sharedClassifier(), read.classifier() == read.tokenEmbedding());
                    for (int l = 0; l < c.nLayers(); l++) {
                        LlamaWeights.Layer a = w.layer(l);
                        LlamaWeights.Layer b = read.layer(l);
                        assertSame(a.wqkv(), b.wqkv());
                        assertSame(a.w13(), b.w13());
                        assertSame(a.wo(), b.wo());
                        assertSame(a.w2(), b.w2());
                        assertSame(a.rmsAtt(), b.rmsAtt());
                        assertSame(a.rmsFfn(), b.rmsFfn());
                    }
                }
            }
        }
    }

    @Test
    void rejectsUnsupportedCheckpointVersions(@TempDir Path tmp) throws IOException {
        Path v2 = tmp.resolve("v2.bin");
        ByteBuffer header = ByteBuffer.allocate(256).order(ByteOrder.LITTLE_ENDIAN);
        header.putInt(LlamaWeights.MAGIC).putInt(2);
        Files.write(v2, header.array());
        IOException e = assertThrows(IOException.class, () -> LlamaWeights.readConfig(v2));
        assertTrue(e.getMessage().contains("version 2"), e.getMessage());
        Path bad = tmp.resolve("bad.bin");
        ByteBuffer legacy = ByteBuffer.allocate(28).order(ByteOrder.LITTLE_ENDIAN);
        legacy.putInt(30).putInt(64).putInt(1).putInt(4).putInt(4).putInt(10).putInt(8);
        Files.write(bad, legacy.array());
        e = assertThrows(IOException.class, () -> LlamaWeights.load(bad, manager));
        assertTrue(e.getMessage().contains("invalid header"), e.getMessage());
    }

    @Test
    void llama8bShapedKvCacheAndAModelWithItsHeads() {
        // Llama-3-8B attention layout: 32 layers, 32 query heads, 8 KV heads of 128
        LlamaConfig big = new LlamaConfig(4096, 14336, 32, 32, 8, 128256, 8192, false);
        assertEquals(128, big.headSize());
        assertEquals(1024, big.kvDim());
        assertEquals(4, big.kvMul());
        assertEquals(2L * 32 * 1024 * 4, big.kvBytesPerToken());
        assertEquals(8_030_261_248L, big.parameterCount());
        try (ContiguousKvCache cache = new ContiguousKvCache(big, 3, manager);
                NDManager m = manager.newSubManager()) {
            assertEquals(32, cache.layers());
            assertEquals(1024, cache.kvDim());
            NDArray k = m.arange(2048f).reshape(2, 1024);
            cache.write(31, 1, k, k.neg());
            assertArrayEquals(k.toFloatArray(), slice(cache.keys(31, 3, m), 1024, 3072));
            assertArrayEquals(k.neg().toFloatArray(), slice(cache.values(31, 3, m), 1024, 3072));
            assertTrue(allEqual(cache.keys(0, 3, m).toFloatArray(), 0f));
        }
        // a model with those heads (8 KV heads x 128, 2 query heads per KV head), in 2 layers
        // with a small FFN and vocabulary so that the test stays fast
        LlamaConfig heads = new LlamaConfig(2048, 64, 2, 16, 8, 64, 8, true);
        assertEquals(128, heads.headSize());
        assertEquals(1024, heads.kvDim());
        try (LlamaWeights w = LlamaWeights.random(heads, 3, manager);
                LlamaModel model = new LlamaModel(w);
                ContiguousKvCache cache = model.newCache(8);
                NDManager m = manager.newSubManager()) {
            NDArray logits = model.forward(new int[] {1, 5, 9, 2}, 0, cache, m);
            assertEquals(new Shape(64), logits.getShape());
            assertTrue(allFinite(logits.toFloatArray()));
            assertTrue(allFinite(model.step(7, 4, cache)));
        }
    }

    @Test
    void cacheChecksBoundsAndReturnsIndependentHandles() {
        LlamaConfig c = small(0);
        try (ContiguousKvCache cache = new ContiguousKvCache(c, 4, manager);
                NDManager m = manager.newSubManager()) {
            NDArray row = m.ones(new Shape(1, c.kvDim()));
            assertThrows(IndexOutOfBoundsException.class, () -> cache.write(0, 4, row, row));
            assertThrows(IndexOutOfBoundsException.class, () -> cache.write(2, 0, row, row));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> cache.write(0, 0, m.ones(new Shape(1, 3)), row));
            assertThrows(IndexOutOfBoundsException.class, () -> cache.keys(0, 5, m));
            cache.write(1, 3, row, row);
            try (NDManager tmp = m.newSubManager()) {
                cache.keys(1, 4, tmp);
            }
            float[] keys = cache.keys(1, 4, m).toFloatArray();
            assertEquals(1f, keys[3 * c.kvDim()]);
            assertThrows(
                    IllegalArgumentException.class,
                    () -> new ContiguousKvCache(c, c.seqLen() + 1, manager));
        }
    }

    @Test
    void forwardRejectsBadArguments() {
        LlamaConfig c = small(0);
        try (LlamaWeights w = LlamaWeights.random(c, 1, manager);
                LlamaModel model = new LlamaModel(w);
                ContiguousKvCache cache = model.newCache(4);
                ContiguousKvCache wrong = new ContiguousKvCache(1, c.kvDim(), 4, manager)) {
            assertThrows(IllegalArgumentException.class, () -> model.step(c.vocabSize(), 0, cache));
            assertThrows(IllegalArgumentException.class, () -> model.step(1, 4, cache));
            assertThrows(IllegalArgumentException.class, () -> model.step(1, 0, wrong));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> model.forwardLogits(new int[0], 0, cache));
        }
    }

    @Test
    void samplerFollowsRunC() {
        Sampler s = new Sampler(4, 1f, 0.9f, 42);
        // run.c's xorshift from state 42
        assertEquals(1456360119, s.randomU32());
        assertEquals((int) 3359763283L, s.randomU32());
        assertEquals(0.790136992931366f, s.randomF32());
        assertEquals(2, Sampler.argmax(new float[] {1f, 3f, 5f, 5f}));
        assertEquals(1, Sampler.greedy(3).sample(new float[] {0f, 2f, 1f}));
        // one dominant token: both multinomial and top-p always pick it
        float[] peaked = {0f, 30f, 0f, 0f};
        Sampler multinomial = new Sampler(4, 1f, 1f, 3);
        Sampler topP = new Sampler(4, 1f, 0.5f, 3);
        for (int i = 0; i < 20; i++) {
            assertEquals(1, multinomial.sample(peaked));
            assertEquals(1, topP.sample(peaked));
        }
        // top-p 0.5 over probabilities (0.6, 0.3, 0.1): only the first is in the nucleus
        float[] logits = {(float) Math.log(0.3), (float) Math.log(0.6), (float) Math.log(0.1)};
        Sampler nucleus = new Sampler(3, 1f, 0.5f, 9);
        int[] counts = new int[3];
        for (int i = 0; i < 200; i++) {
            counts[nucleus.sample(logits)]++;
        }
        assertEquals(200, counts[1]);
        // temperature sampling is seeded
        Sampler a = new Sampler(3, 1f, 0f, 11);
        Sampler b = new Sampler(3, 1f, 0f, 11);
        int[] seen = new int[3];
        for (int i = 0; i < 200; i++) {
            int t = a.sample(logits);
            assertEquals(t, b.sample(logits));
            seen[t]++;
        }
        assertTrue(seen[0] > 30 && seen[1] > 80 && seen[2] > 3, Arrays.toString(seen));
    }

    private int[] greedy(LlamaWeights w, int steps) {
        try (LlamaModel model = new LlamaModel(w);
                ContiguousKvCache cache = model.newCache(steps)) {
            Sampler sampler = Sampler.greedy(w.config().vocabSize());
            int[] tokens = new int[steps];
            tokens[0] = 1;
            float[] logits = model.forwardLogits(new int[] {1}, 0, cache);
            for (int pos = 1; pos < steps; pos++) {
                tokens[pos] = sampler.sample(logits);
                logits = model.step(tokens[pos], pos, cache);
            }
            return tokens;
        }
    }

    private static void assertSame(NDArray expected, NDArray actual) {
        assertEquals(expected.getShape(), actual.getShape());
        assertArrayEquals(expected.toFloatArray(), actual.toFloatArray());
    }

    private static void assertClose(float[] expected, float[] actual, String what) {
        Stories260KTest.assertClose(expected, actual, what);
    }

    private static float[] slice(NDArray a, int from, int to) {
        return Arrays.copyOfRange(a.toFloatArray(), from, to);
    }

    private static boolean allEqual(float[] values, float v) {
        for (float f : values) {
            if (f != v) {
                return false;
            }
        }
        return true;
    }

    private static boolean allFinite(float[] values) {
        for (float f : values) {
            if (!Float.isFinite(f)) {
                return false;
            }
        }
        return true;
    }

    private static double[] toDouble(float[] values) {
        double[] out = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return out;
    }
}
