package io.mooncake4j.samples.serving.model;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Which model a process serves, fully resolved (no defaults left to look up), so that a parent can
 * hand exactly the same model to the worker JVMs it starts.
 *
 * @param checkpoint a llama2.c checkpoint, or null for a random model
 * @param tokenizer a llama2.c tokenizer file, or null for the built-in byte-level tokenizer
 * @param random the random model's geometry when {@code checkpoint} is null
 * @param seed the random model's seed
 * @param origin how the model was chosen, for the user (e.g. "default: /x/shared/models")
 */
public record ModelSpec(Path checkpoint, Path tokenizer, RandomModelSpec random, long seed, String origin) {
    /** The value of {@code --tokenizer} that selects the built-in byte-level tokenizer. */
    public static final String BYTE_TOKENIZER = "bytes";

    /** Checks that exactly one of checkpoint and random is set. */
    public ModelSpec {
        if ((checkpoint == null) == (random == null)) {
            throw new IllegalArgumentException("a model is either a checkpoint or a random model");
        }
    }

    /** Whether this is a seeded random model. */
    public boolean isRandom() {
        return random != null;
    }

    /** The name the API reports ({@code stories260K}, {@code random-32x8x128}). */
    public String name() {
        if (random != null) {
            return random.name();
        }
        String f = checkpoint.getFileName().toString();
        return f.endsWith(".bin") ? f.substring(0, f.length() - 4) : f;
    }

    /** The command-line flags that select exactly this model in another process. */
    public List<String> asArguments() {
        List<String> args = new ArrayList<>();
        if (random != null) {
            args.add("--random_model=" + random.format());
            args.add("--model_seed=" + seed);
        } else {
            args.add("--model=" + checkpoint.toAbsolutePath());
        }
        args.add("--tokenizer=" + (tokenizer == null ? BYTE_TOKENIZER : tokenizer.toAbsolutePath().toString()));
        return args;
    }

    /** One line for the user. */
    public String describe() {
        String tok = tokenizer == null ? "byte-level tokenizer" : "tokenizer " + tokenizer;
        if (random != null) {
            return "seeded RANDOM model " + random.name() + " (" + random.layers() + " layers, " + random.kvHeads()
                    + " KV heads x " + random.headSize() + ", dim " + random.dim() + ", hidden " + random.hiddenDim()
                    + ", seq_len " + random.seqLen() + ", seed " + seed + ", " + (random.kvBytesPerToken() >> 10)
                    + " KiB of KV cache per token), " + tok + "; its text is gibberish (" + origin + ")";
        }
        return "model " + checkpoint + ", " + tok + " (" + origin + ")";
    }
}
