package io.mooncake4j.samples.serving;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.djl.llama.LlamaWeights;
import io.mooncake4j.samples.serving.model.ModelLocator;
import io.mooncake4j.samples.serving.model.ModelSpec;
import io.mooncake4j.samples.serving.model.RandomModelSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import picocli.CommandLine.Option;

/**
 * The model flags of {@code generate}, {@code demo}, {@code prefill} and {@code decode} (a picocli
 * {@code @Mixin}). With neither {@code --model} nor {@code --random_model}, stories260K.bin and
 * tok512.bin are taken from {@code $MOONCAKE4J_MODELS} or the {@code shared/models} folder next to
 * the repository; when they are not there a seeded random model is used, and the tools say so.
 */
public final class ModelOptions {
    @Option(names = {"--model", "-m"}, paramLabel = "FILE",
            description = "llama2.c checkpoint (stories260K.bin, stories15M.bin, ...). Default: "
                    + ModelLocator.CHECKPOINT + " in $" + ModelLocator.ENV
                    + " or ../shared/models next to the repository, else a random model.")
    Path model;

    @Option(names = {"--tokenizer", "-z"}, paramLabel = "FILE",
            description = "llama2.c tokenizer (tok512.bin, tokenizer.bin), or '" + ModelSpec.BYTE_TOKENIZER
                    + "' for a byte-level one. Default: " + ModelLocator.TOKENIZER
                    + " beside the default model, else tokenizer.bin beside --model.")
    String tokenizer;

    @Option(names = "--random_model", paramLabel = "L,KVH,HS[,H[,HID[,SEQ]]]", arity = "0..1", fallbackValue = "",
            description = "Serve a seeded random model of this geometry instead of a checkpoint: layers, KV heads,"
                    + " head size, then optionally query heads, FFN width, context length (or key=value pairs)."
                    + " Alone: " + RandomModelSpec.DEFAULT + " (256 KiB of KV cache per token).")
    String randomModel;

    @Option(names = "--model_seed", paramLabel = "N", description = "Seed of the random model's weights. Default: 42.")
    long modelSeed = 42;

    /** Sets the checkpoint (tests). */
    public ModelOptions model(Path p) {
        this.model = p;
        return this;
    }

    /** Resolves the flags and the defaults into one model. */
    public ModelSpec resolve() {
        if (randomModel != null) {
            if (model != null) {
                throw usage("--model and --random_model exclude each other");
            }
            RandomModelSpec geometry;
            try {
                geometry = RandomModelSpec.parse(randomModel);
            } catch (IllegalArgumentException e) {
                throw usage(e.getMessage());
            }
            Path tok = tokenizerFlag().orElse(null);
            if (tokenizer == null) {
                tok = ModelLocator.findTokenizer().orElse(null);
            }
            return new ModelSpec(null, tok, geometry, modelSeed, "--random_model");
        }
        if (model != null) {
            if (!Files.isRegularFile(model)) {
                throw usage("--model " + model + ": no such file");
            }
            Path tok = tokenizer != null ? tokenizerFlag().orElse(null) : defaultTokenizerFor(model);
            return new ModelSpec(model.toAbsolutePath(), tok, null, modelSeed, "--model");
        }
        Optional<Path> dir = ModelLocator.find();
        if (dir.isPresent()) {
            Path tok = tokenizer != null ? tokenizerFlag().orElse(null) : dir.get().resolve(ModelLocator.TOKENIZER);
            return new ModelSpec(dir.get().resolve(ModelLocator.CHECKPOINT), tok, null, modelSeed,
                    "default, found in " + dir.get());
        }
        Path tok = tokenizer != null ? tokenizerFlag().orElse(null) : null;
        return new ModelSpec(null, tok, RandomModelSpec.parse(RandomModelSpec.DEFAULT), modelSeed,
                "no checkpoint given and no " + ModelLocator.CHECKPOINT + " found in " + ModelLocator.candidates()
                        + "; pass --model or set $" + ModelLocator.ENV);
    }

    private Optional<Path> tokenizerFlag() {
        if (tokenizer == null || tokenizer.equals(ModelSpec.BYTE_TOKENIZER)) {
            return Optional.empty();
        }
        Path p = Path.of(tokenizer);
        if (!Files.isRegularFile(p)) {
            throw usage("--tokenizer " + tokenizer + ": no such file");
        }
        return Optional.of(p.toAbsolutePath());
    }

    /** tok512.bin for a 512-token checkpoint when the default one is around, else tokenizer.bin beside it. */
    private static Path defaultTokenizerFor(Path checkpoint) {
        Path beside = checkpoint.toAbsolutePath().resolveSibling("tokenizer.bin");
        try {
            int vocab = LlamaWeights.readConfig(checkpoint).vocabSize();
            Path tok512 = checkpoint.toAbsolutePath().resolveSibling(ModelLocator.TOKENIZER);
            if (vocab == 512) {
                if (Files.isRegularFile(tok512)) {
                    return tok512;
                }
                Optional<Path> found = ModelLocator.findTokenizer();
                if (found.isPresent()) {
                    return found.get();
                }
            }
        } catch (IOException e) {
            throw usage("--model " + checkpoint + ": " + e.getMessage());
        }
        if (Files.isRegularFile(beside)) {
            return beside;
        }
        throw usage("no tokenizer for " + checkpoint + ": pass --tokenizer (llama2.c's tokenizer.bin for"
                + " stories15M/42M/110M, tok512.bin for stories260K)");
    }

    private static MooncakeException usage(String message) {
        return new MooncakeException(ErrorCode.CONFIGURATION, message);
    }
}
