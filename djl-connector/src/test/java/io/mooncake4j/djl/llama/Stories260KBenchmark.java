package io.mooncake4j.djl.llama;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.ndarray.NDManager;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Decode speed on stories260K, greedy, 256 positions without a prompt, after warm-up. Tagged
 * "benchmark", which the build excludes by default; run it with {@code -Dsurefire.excludedGroups=
 * -Dtest=Stories260KBenchmark}.
 */
@Tag("benchmark")
class Stories260KBenchmark {

    @Test
    void decodeSpeed() throws IOException {
        Path dir = ModelFiles.require();
        try (NDManager manager = TestEngine.newManager();
                LlamaWeights weights =
                        LlamaWeights.load(dir.resolve(ModelFiles.CHECKPOINT), manager);
                LlamaModel model = new LlamaModel(weights)) {
            Tokenizer tokenizer = Tokenizer.load(dir.resolve(ModelFiles.TOKENIZER), 512);
            Generator generator = new Generator(model, tokenizer);
            for (int warmup = 0; warmup < 5; warmup++) {
                generator.generate(null, 256, Sampler.greedy(512), null);
            }
            int runs = 10;
            long steps = 0;
            long nanos = 0;
            for (int run = 0; run < runs; run++) {
                Generation g = generator.generate(null, 256, Sampler.greedy(512), null);
                assertEquals(256, g.positions());
                steps += g.decodeSteps();
                nanos += g.decodeNanos();
            }
            System.out.printf(
                    "stories260K decode: %.1f tokens/s (%d runs of 255 decode steps)%n",
                    steps * 1e9 / nanos, runs);
        }
    }
}
