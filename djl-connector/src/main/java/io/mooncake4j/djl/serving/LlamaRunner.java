package io.mooncake4j.djl.serving;

import ai.djl.ndarray.NDManager;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.llama.Generator;
import io.mooncake4j.djl.llama.LlamaConfig;
import io.mooncake4j.djl.llama.LlamaModel;
import io.mooncake4j.djl.llama.LlamaWeights;
import io.mooncake4j.djl.llama.Sampler;
import io.mooncake4j.djl.llama.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** A llama2.c checkpoint and tokenizer loaded for serving. */
final class LlamaRunner implements AutoCloseable {
    final LlamaWeights weights;
    final LlamaModel model;
    final Tokenizer tokenizer;
    final Generator generator;

    private LlamaRunner(LlamaWeights weights, Tokenizer tokenizer) {
        this.weights = weights;
        this.model = new LlamaModel(weights);
        this.tokenizer = tokenizer;
        this.generator = new Generator(model, tokenizer);
    }

    /**
     * Loads {@code checkpoint} and {@code tokenizer}, resolved against the model directory when
     * relative.
     */
    static LlamaRunner load(Path modelDir, String checkpoint, String tokenizer, NDManager manager) {
        Path ckpt = resolve(modelDir, checkpoint, "checkpoint");
        Path tok = resolve(modelDir, tokenizer, "tokenizer");
        LlamaWeights w = null;
        try {
            w = LlamaWeights.load(ckpt, manager);
            return new LlamaRunner(w, Tokenizer.load(tok, w.config().vocabSize()));
        } catch (IOException | RuntimeException e) {
            if (w != null) {
                w.close();
            }
            throw new KvException(KvError.INVALID_PARAMS, "cannot load the Llama model " + ckpt + " / " + tok + ": " + e, e);
        }
    }

    private static Path resolve(Path dir, String name, String what) {
        Path p = Path.of(name);
        if (!p.isAbsolute() && dir != null) {
            p = dir.resolve(name);
        }
        if (!Files.isRegularFile(p)) {
            throw new KvException(KvError.INVALID_PARAMS, "the " + what + " file " + p + " does not exist: set the model"
                    + " argument '" + what + "' (a path, absolute or relative to the model directory)");
        }
        return p;
    }

    LlamaConfig config() {
        return model.config();
    }

    Sampler sampler(float temperature, float topP, long seed) {
        return temperature <= 0 ? Sampler.greedy(config().vocabSize()) : new Sampler(config().vocabSize(), temperature, topP, seed);
    }

    /** The text of {@code tokens[from..]}, each piece decoded after its predecessor as run.c prints it. */
    String text(int[] tokens, int from) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = Math.max(1, from); i < tokens.length; i++) {
            byte[] piece = Tokenizer.safePiece(tokenizer.decode(tokens[i - 1], tokens[i]));
            if (piece != null) {
                out.writeBytes(piece);
            }
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
        model.close();
        weights.close();
    }
}
