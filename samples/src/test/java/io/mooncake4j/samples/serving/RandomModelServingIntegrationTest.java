package io.mooncake4j.samples.serving;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import io.mooncake4j.djl.llama.Tokenizer;
import io.mooncake4j.samples.serving.http.CompletionClient;
import io.mooncake4j.samples.serving.http.CompletionResult;
import io.mooncake4j.samples.serving.model.ModelSpec;
import io.mooncake4j.samples.serving.model.RandomModelSpec;
import io.mooncake4j.samples.serving.model.ServingModel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A seeded random model with a real model's KV geometry (32 layers x 4 KV heads x 128, 128 KiB per
 * token): a 520-token prompt moves 66 MiB of KV cache from the prefill JVM to the decode JVM, and
 * decoding from it gives exactly the tokens of colocated generation.
 */
@Tag("integration")
class RandomModelServingIntegrationTest {
    /** 32 layers, 4 KV heads x 128 (dim 512), a small FFN, context 640. */
    static final RandomModelSpec GEOMETRY = RandomModelSpec.parse("32,4,128,4,64,640");
    static final int PROMPT = 520;
    static final int MAX_TOKENS = 6;

    @TempDir Path logs;

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void shouldMoveAtLeast64MiBPerRequestAndDecodeTheColocatedTokens() throws Exception {
        ModelSpec spec = new ModelSpec(null, null, GEOMETRY, 1234, "test");
        int[] longPrompt = new int[PROMPT];
        longPrompt[0] = Tokenizer.BOS;
        SplittableRandom rnd = new SplittableRandom(99);
        for (int i = 1; i < PROMPT; i++) {
            longPrompt[i] = rnd.nextInt(3, ServingModel.BYTE_VOCAB);
        }
        int[] shortPrompt = {Tokenizer.BOS, 40, 41, 42};
        try (LocalCluster cluster = LocalCluster.start(spec, List.of("--kv_pool_mb=160"), false,
                logs, null)) {
            // the reference, colocated in this JVM, while nothing else computes
            int[] expectedLong;
            int[] expectedShort;
            try (ServingModel model = TestModels.load(spec)) {
                expectedLong = TestModels.colocated(model, longPrompt, PROMPT - 1 + MAX_TOKENS);
                expectedShort = TestModels.colocated(model, shortPrompt, shortPrompt.length - 1 + MAX_TOKENS);
            }
            CompletionClient decode = new CompletionClient(cluster.decodeUrl(), Duration.ofSeconds(240));
            CompletionResult big = decode.complete(body(longPrompt));
            assertArrayEquals(expectedLong, big.allTokenIds());
            long kvBytes = (long) big.serverNumber("kv_bytes");
            assertTrue(kvBytes >= 64L << 20, "KV moved per request: " + kvBytes + " bytes");
            // 33 blocks of 16 positions x 32 layers x K/V x 512 floats
            assertEquals(33L * 16 * 32 * 2 * 512 * 4, kvBytes);
            assertEquals(32 * 2, (int) big.serverNumber("kv_requests"), "blocks coalesced into one run per layer and part");
            CompletionResult small = decode.stream(body(shortPrompt), (t, id) -> { });
            assertArrayEquals(expectedShort, small.allTokenIds());
            assertEquals(expectedLong.length - PROMPT, big.completionTokens());
        }
    }

    private static JsonObject body(int[] prompt) {
        JsonObject b = new JsonObject();
        com.google.gson.JsonArray a = new com.google.gson.JsonArray();
        for (int t : prompt) {
            a.add(t);
        }
        b.add("prompt", a);
        b.addProperty("max_tokens", MAX_TOKENS);
        b.addProperty("temperature", 0);
        b.addProperty("return_token_ids", true);
        return b;
    }
}
