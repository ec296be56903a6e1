package io.mooncake4j.djl.serving;

import ai.djl.ndarray.NDManager;
import io.mooncake4j.djl.KvTestSupport;
import io.mooncake4j.djl.llama.Generation;
import io.mooncake4j.djl.llama.Generator;
import io.mooncake4j.djl.llama.LlamaModel;
import io.mooncake4j.djl.llama.LlamaWeights;
import io.mooncake4j.djl.llama.Sampler;
import io.mooncake4j.djl.llama.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Greedy generation of stories260K in one process, no KV transfer: what a prefill/decode split
 * must reproduce token for token.
 *
 * @param tokens the prompt's tokens followed by the generated ones
 * @param promptLength how many of {@code tokens} are the prompt's
 */
record GreedyReference(int[] tokens, int promptLength) {
    static final String CHECKPOINT = "stories260K.bin";
    static final String TOKENIZER = "tok512.bin";

    static GreedyReference generate(Path models, String prompt, int newTokens) throws IOException {
        try (NDManager m = KvTestSupport.newManager();
                LlamaWeights w = LlamaWeights.load(models.resolve(CHECKPOINT), m);
                LlamaModel model = new LlamaModel(w)) {
            Tokenizer tok = Tokenizer.load(models.resolve(TOKENIZER), w.config().vocabSize());
            int steps = tok.encode(prompt, true, false).length + newTokens;
            Generation gen = new Generator(model, tok).generate(prompt, steps, Sampler.greedy(w.config().vocabSize()), null);
            return new GreedyReference(gen.tokens(), gen.promptLength());
        }
    }

    /**
     * The folder with stories260K.bin and tok512.bin: {@code -Dmooncake4j.models} or {@code
     * MOONCAKE4J_MODELS}, else the nearest {@code shared/models} above the working directory; null
     * when there is none.
     */
    static Path findModels() {
        String configured = System.getProperty("mooncake4j.models", System.getenv("MOONCAKE4J_MODELS"));
        if (configured != null && !configured.isBlank()) {
            return Files.isRegularFile(Path.of(configured, CHECKPOINT)) ? Path.of(configured) : null;
        }
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path dir = d.resolve("shared").resolve("models");
            if (Files.isRegularFile(dir.resolve(CHECKPOINT)) && Files.isRegularFile(dir.resolve(TOKENIZER))) {
                return dir;
            }
        }
        return null;
    }
}
