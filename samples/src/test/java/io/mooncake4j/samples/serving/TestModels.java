package io.mooncake4j.samples.serving;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.djl.llama.Generation;
import io.mooncake4j.djl.llama.Sampler;
import io.mooncake4j.samples.serving.model.ModelLocator;
import io.mooncake4j.samples.serving.model.ModelSpec;
import io.mooncake4j.samples.serving.model.RandomModelSpec;
import io.mooncake4j.samples.serving.model.ServingModel;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;

/**
 * The models the serving tests use, and colocated generation to compare with. Tests that need the
 * stories260K files fail when they are absent in CI (the environment variable {@code CI} set, or
 * {@code -Dmooncake4j.models.required=true}) and are skipped elsewhere.
 */
final class TestModels {
    /** The system property that makes missing models a failure rather than a skip. */
    static final String REQUIRED = "mooncake4j.models.required";
    /** run.c's stdout for {@code -t 0 -n 64 -i "Once upon a time"} (shared/models/README.md). */
    static final String REFERENCE_64 = "Once upon a time, there was a little girl named Lily. She loved to play outside in"
            + " the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily\n";

    private TestModels() {}

    static Optional<Path> modelsDir() {
        return ModelLocator.find();
    }

    /** stories260K + tok512; when they are absent the test fails in CI and is skipped elsewhere. */
    static ModelSpec stories() {
        Optional<Path> dir = modelsDir();
        if (dir.isEmpty()) {
            String message = ModelLocator.CHECKPOINT + " and " + ModelLocator.TOKENIZER + " not found; expected in one of "
                    + ModelLocator.candidates() + " (set MOONCAKE4J_MODELS or put them in ../shared/models)";
            if (required()) {
                fail(message + ". They are required in CI (" + REQUIRED + " or the CI environment variable)");
            }
            assumeTrue(false, message);
        }
        return new ModelSpec(dir.get().resolve(ModelLocator.CHECKPOINT), dir.get().resolve(ModelLocator.TOKENIZER),
                null, 42, "test");
    }

    /** Whether missing models fail the tests: in CI, or when {@value #REQUIRED} is true. */
    static boolean required() {
        if (Boolean.parseBoolean(System.getProperty(REQUIRED))) {
            return true;
        }
        String ci = System.getenv("CI");
        return ci != null && !ci.isBlank() && !ci.trim().toLowerCase(Locale.ROOT).matches("false|0|no");
    }

    /** A tiny random model with the byte tokenizer (for runs that only need some model). */
    static ModelSpec tinyRandom() {
        return new ModelSpec(null, null, RandomModelSpec.parse("2,2,16,4,32,256"), 7, "test");
    }

    /** Loads a model in this JVM (one PyTorch thread). */
    static ServingModel load(ModelSpec spec) {
        ServingModel.configureDjl(1);
        return ServingModel.loadUnchecked(spec);
    }

    /** Greedy colocated generation of a token prompt: the whole sequence, prompt included. */
    static int[] colocated(ServingModel m, int[] prompt, int steps) {
        Sampler greedy = Sampler.greedy(m.config().vocabSize());
        int total = m.generator().effectiveSteps(steps);
        try (var cache = m.model().newCache(total)) {
            Generation g = m.generator().prefill(prompt, steps, greedy, cache, null);
            return m.generator().decode(g, steps, greedy, cache, null).tokens();
        }
    }

    /** Greedy colocated generation of a text prompt with max_tokens semantics. */
    static int[] colocated(ServingModel m, String prompt, int maxTokens) {
        int[] tokens = m.tokenizer().encode(prompt, true, false);
        return colocated(m, tokens, tokens.length - 1 + maxTokens);
    }
}
