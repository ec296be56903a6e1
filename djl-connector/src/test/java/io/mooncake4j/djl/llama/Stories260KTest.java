package io.mooncake4j.djl.llama;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;

/** Checks against llama2.c run.c's output for stories260K + tok512 (see shared/models/README). */
class Stories260KTest {

    static final String PROMPT = "Once upon a time";
    static final int[] PROMPT_TOKENS = {1, 403, 407, 261, 378};

    /** The 60 tokens run.c samples for the prompt with -n 64 -t 0. */
    static final int[] EXPECTED_60 = {
        432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
        419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352,
        266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270,
        333, 415, 426, 13, 438, 310
    };

    /** run.c's max logit at positions 0..63 of that run. */
    static final float[] MAX_LOGITS = {
        17.023516f, 18.459986f, 17.136963f, 18.874399f, 17.799398f, 18.605124f, 17.756092f,
        19.515947f, 13.403057f, 16.951445f, 15.605296f, 20.519464f, 15.629930f, 18.050268f,
        15.837549f, 17.456520f, 17.125414f, 21.967556f, 18.259789f, 14.637012f, 16.430716f,
        15.745104f, 18.659605f, 19.093418f, 20.547173f, 16.331684f, 16.048422f, 13.059130f,
        17.926834f, 16.981890f, 13.740890f, 18.631227f, 15.411914f, 17.659683f, 17.326117f,
        13.823866f, 18.534969f, 12.037796f, 13.174994f, 13.625788f, 14.954189f, 13.756721f,
        13.325997f, 10.945148f, 16.155500f, 14.121799f, 20.739412f, 19.595493f, 13.430802f,
        17.043425f, 16.936808f, 14.612049f, 17.879694f, 15.644804f, 16.533609f, 16.945385f,
        18.216471f, 14.929849f, 16.657698f, 18.471638f, 13.539267f, 16.113655f, 15.248538f,
        19.273191f
    };

    static final String STORY =
            "Once upon a time, there was a little girl named Lily. She loved to play outside in"
                    + " the park. One day, she saw a big, red ball. She wanted to play with it,"
                    + " but it was too high.\nLily";

    static final String STORY_200 =
            STORY
                    + "'s mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know"
                    + " what to do. She said, \"I want to play with your ball, but I can't find"
                    + " it.\"\nLily was sad and didn't know what to do. She said, \"I'm sorry,"
                    + " Lily. I didn't know what to do.\"\nLily didn't want to help her mom, so"
                    + " she";

    private static NDManager manager;
    private static LlamaWeights weights;
    private static LlamaModel model;
    private static Tokenizer tokenizer;
    private static Path checkpoint;

    @BeforeAll
    static void load() throws IOException {
        Path dir = ModelFiles.find();
        if (dir == null) {
            return;
        }
        manager = TestEngine.newManager();
        checkpoint = dir.resolve(ModelFiles.CHECKPOINT);
        weights = LlamaWeights.load(checkpoint, manager);
        model = new LlamaModel(weights);
        tokenizer = Tokenizer.load(dir.resolve(ModelFiles.TOKENIZER), 512);
    }

    @AfterAll
    static void close() {
        if (manager != null) {
            manager.close();
        }
    }

    @Test
    void readsTheHeader() throws IOException {
        ModelFiles.require();
        LlamaConfig c = LlamaWeights.readConfig(checkpoint);
        assertEquals(new LlamaConfig(64, 172, 5, 8, 4, 512, 512, true), c);
        assertEquals(8, c.headSize());
        assertEquals(32, c.kvDim());
        assertEquals(c, weights.config());
        assertTrue(weights.classifier() == weights.tokenEmbedding());
    }

    @Test
    void greedyGenerationMatchesRunCByteForByte() throws NoSuchAlgorithmException {
        ModelFiles.require();
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(stdout, false, StandardCharsets.UTF_8);
        int arrays = manager.getManagedArrays().size();
        Generation g =
                new Generator(model, tokenizer).generate(PROMPT, 64, Sampler.greedy(512), out);
        assertEquals(arrays, manager.getManagedArrays().size(), "arrays left behind");
        assertArrayEquals(PROMPT_TOKENS, Arrays.copyOf(g.tokens(), 5));
        assertArrayEquals(EXPECTED_60, g.generated());
        assertEquals(5, g.promptLength());
        assertEquals(64, g.positions());
        assertEquals(59, g.decodeSteps());
        byte[] bytes = stdout.toByteArray();
        assertEquals(STORY + "\n", new String(bytes, StandardCharsets.UTF_8));
        assertEquals(181, bytes.length);
        assertEquals(
                "acafc72b7b71228fa8f8bb998abafb3d2c5c8bcf5d1626e59b23b69f3bb11f7d",
                HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)));
        System.out.printf(
                "stories260K: prefill of 5 tokens %.2f ms, decode %.1f tokens/s%n",
                g.prefillNanos() / 1e6, g.decodeTokensPerSecond());
    }

    @Test
    void batchedForwardOfTheWholeRunMatchesRunCLogits() {
        ModelFiles.require();
        int[] sequence = new int[64];
        System.arraycopy(PROMPT_TOKENS, 0, sequence, 0, 5);
        System.arraycopy(EXPECTED_60, 0, sequence, 5, 59);
        try (NDManager m = manager.newSubManager();
                ContiguousKvCache cache = model.newCache(64)) {
            NDArray logits = model.forwardAll(sequence, 0, cache, m);
            assertArrayEquals(new long[] {64, 512}, logits.getShape().getShape());
            float[] all = logits.toFloatArray();
            for (int pos = 0; pos < 64; pos++) {
                float[] row = Arrays.copyOfRange(all, pos * 512, (pos + 1) * 512);
                int next = pos < 4 ? PROMPT_TOKENS[pos + 1] : EXPECTED_60[pos - 4];
                assertEquals(next, Sampler.argmax(row), "argmax at position " + pos);
                assertEquals(MAX_LOGITS[pos], row[next], 1e-3f, "max logit at position " + pos);
            }
        }
    }

    @Test
    void noPromptGenerationMatchesRunC() {
        ModelFiles.require();
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(stdout, false, StandardCharsets.UTF_8);
        Generation g =
                new Generator(model, tokenizer).generate(null, 200, Sampler.greedy(512), out);
        assertEquals(STORY_200 + "\n", stdout.toString(StandardCharsets.UTF_8));
        assertEquals(1, g.promptLength());
        assertEquals(200, g.positions());
    }

    @Test
    void batchedPrefillThenDecodeEqualsOneTokenAtATime() {
        ModelFiles.require();
        int[] sequence = new int[24];
        System.arraycopy(PROMPT_TOKENS, 0, sequence, 0, 5);
        System.arraycopy(EXPECTED_60, 0, sequence, 5, 19);
        try (NDManager m = manager.newSubManager();
                ContiguousKvCache stepwise = model.newCache(24);
                ContiguousKvCache batched = model.newCache(24);
                ContiguousKvCache chunked = model.newCache(24)) {
            float[][] expected = new float[24][];
            for (int pos = 0; pos < 24; pos++) {
                expected[pos] = model.step(sequence[pos], pos, stepwise);
            }
            // one prefill of 20 tokens, then 4 decode steps
            assertClose(
                    expected[19],
                    model.forwardLogits(Arrays.copyOf(sequence, 20), 0, batched),
                    "prefill");
            for (int pos = 20; pos < 24; pos++) {
                assertClose(
                        expected[pos], model.step(sequence[pos], pos, batched), "decode at " + pos);
            }
            // chunked prefill: 9 tokens, then 15 at positions 9..23 (causal mask with offset)
            model.forwardLogits(Arrays.copyOf(sequence, 9), 0, chunked);
            assertClose(
                    expected[23],
                    model.forwardLogits(Arrays.copyOfRange(sequence, 9, 24), 9, chunked),
                    "chunk");
            for (int layer = 0; layer < 5; layer++) {
                assertClose(
                        stepwise.keys(layer, 24, m).toFloatArray(),
                        batched.keys(layer, 24, m).toFloatArray(),
                        "keys of layer " + layer);
                assertClose(
                        stepwise.values(layer, 24, m).toFloatArray(),
                        chunked.values(layer, 24, m).toFloatArray(),
                        "values of layer " + layer);
            }
        }
    }

    @Test
    void prefillAndDecodeInSeparateCachesReproduceTheRun() {
        ModelFiles.require();
        Generator generator = new Generator(model, tokenizer);
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(stdout, false, StandardCharsets.UTF_8);
        try (NDManager m = manager.newSubManager();
                ContiguousKvCache prefillCache = model.newCache(5);
                ContiguousKvCache decodeCache = model.newCache(64)) {
            Generation prefilled =
                    generator.prefill(
                            tokenizer.encode(PROMPT, true, false),
                            64,
                            Sampler.greedy(512),
                            prefillCache,
                            out);
            assertFalse(prefilled.finished());
            assertEquals(5, prefilled.positions());
            assertEquals(EXPECTED_60[0], prefilled.tokens()[5]);
            KvCache.copy(prefillCache, decodeCache, prefilled.positions(), m);
            Generation done =
                    generator.decode(prefilled, 64, Sampler.greedy(512), decodeCache, out);
            assertArrayEquals(EXPECTED_60, done.generated());
            out.print('\n');
            out.flush();
            assertEquals(STORY + "\n", stdout.toString(StandardCharsets.UTF_8));
        }
    }

    @Test
    void stepsShorterThanThePromptOnlyPrintThePrompt() {
        ModelFiles.require();
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(stdout, false, StandardCharsets.UTF_8);
        Generation g =
                new Generator(model, tokenizer).generate(PROMPT, 3, Sampler.greedy(512), out);
        // run.c -n 3: positions 0..2 print the prompt's 2nd..4th tokens
        assertEquals("Once upon a\n", stdout.toString(StandardCharsets.UTF_8));
        assertTrue(g.finished());
        assertEquals(3, g.positions());
    }

    @Test
    void rejectsATruncatedCheckpoint(@TempDir Path tmp) throws IOException {
        ModelFiles.require();
        Path truncated = tmp.resolve("truncated.bin");
        byte[] all = Files.readAllBytes(checkpoint);
        Files.write(truncated, Arrays.copyOf(all, all.length - 4));
        IOException e =
                assertThrows(IOException.class, () -> LlamaWeights.load(truncated, manager));
        assertTrue(e.getMessage().contains("too short"), e.getMessage());
        assertTrue(e.getMessage().contains("1056540"), e.getMessage());
        Files.write(truncated, Arrays.copyOf(all, 20));
        e = assertThrows(IOException.class, () -> LlamaWeights.load(truncated, manager));
        assertTrue(e.getMessage().contains("header"), e.getMessage());
    }

    static void assertClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        float worst = 0;
        for (int i = 0; i < expected.length; i++) {
            worst = Math.max(worst, Math.abs(expected[i] - actual[i]));
        }
        assertTrue(worst <= 1e-4f, what + ": max difference " + worst);
    }
}
