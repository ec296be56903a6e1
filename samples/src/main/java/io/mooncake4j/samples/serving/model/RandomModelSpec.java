package io.mooncake4j.samples.serving.model;

import io.mooncake4j.djl.llama.LlamaConfig;
import java.util.Locale;

/**
 * The geometry of a seeded random Llama model, for runs without a checkpoint: its KV cache has the
 * size of a real model's ({@code layers x 2 x kvHeads x headSize} floats per token) while the
 * feed-forward width, which does not change the KV cache, stays small by default so that weights
 * are quick to generate.
 *
 * <p>Written {@code LAYERS,KV_HEADS,HEAD_SIZE[,HEADS[,HIDDEN_DIM[,SEQ_LEN]]]} (e.g. {@code
 * 32,8,128}) or as {@code key=value} pairs ({@code layers=32,kv_heads=8,head_size=128,heads=32,
 * hidden_dim=1024,seq_len=2048}).
 *
 * @param layers transformer layers
 * @param kvHeads key/value heads
 * @param headSize elements per head
 * @param heads query heads, a multiple of {@code kvHeads}; {@code dim = heads * headSize}
 * @param hiddenDim the feed-forward width
 * @param seqLen the context length
 */
public record RandomModelSpec(int layers, int kvHeads, int headSize, int heads, int hiddenDim, int seqLen) {
    /** The geometry used when no checkpoint is found: a KV cache of 256 KiB per token. */
    public static final String DEFAULT = "32,8,128";

    /** Default context length. */
    public static final int DEFAULT_SEQ_LEN = 1024;

    /** Validates. */
    public RandomModelSpec {
        positive("layers", layers);
        positive("kv_heads", kvHeads);
        positive("head_size", headSize);
        positive("heads", heads);
        positive("hidden_dim", hiddenDim);
        positive("seq_len", seqLen);
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("heads " + heads + " must be a multiple of kv_heads " + kvHeads);
        }
        if (headSize % 2 != 0) {
            throw new IllegalArgumentException("head_size " + headSize + " must be even (rotary embeddings)");
        }
    }

    /** Parses either form (see the class comment). */
    public static RandomModelSpec parse(String text) {
        String s = text == null ? "" : text.trim();
        if (s.isEmpty()) {
            s = DEFAULT;
        }
        int layers = 0;
        int kvHeads = 0;
        int headSize = 0;
        int heads = 0;
        int hidden = 0;
        int seqLen = 0;
        String[] parts = s.split(",");
        if (s.contains("=")) {
            for (String part : parts) {
                String[] kv = part.split("=", 2);
                if (kv.length != 2) {
                    throw new IllegalArgumentException("'" + part + "' in --random_model: expected key=value");
                }
                int v = number(kv[1], kv[0]);
                switch (kv[0].trim().toLowerCase(Locale.ROOT).replace('-', '_')) {
                    case "layers", "n_layers" -> layers = v;
                    case "kv_heads", "n_kv_heads" -> kvHeads = v;
                    case "head_size" -> headSize = v;
                    case "heads", "n_heads" -> heads = v;
                    case "hidden_dim", "hidden" -> hidden = v;
                    case "seq_len" -> seqLen = v;
                    default -> throw new IllegalArgumentException("unknown key '" + kv[0]
                            + "' in --random_model: use layers, kv_heads, head_size, heads, hidden_dim, seq_len");
                }
            }
        } else {
            if (parts.length < 3 || parts.length > 6) {
                throw new IllegalArgumentException("--random_model '" + text
                        + "': expected LAYERS,KV_HEADS,HEAD_SIZE[,HEADS[,HIDDEN_DIM[,SEQ_LEN]]]");
            }
            String[] names = {"layers", "kv_heads", "head_size", "heads", "hidden_dim", "seq_len"};
            int[] v = new int[6];
            for (int i = 0; i < parts.length; i++) {
                v[i] = number(parts[i], names[i]);
            }
            layers = v[0];
            kvHeads = v[1];
            headSize = v[2];
            heads = v[3];
            hidden = v[4];
            seqLen = v[5];
        }
        if (layers == 0 || kvHeads == 0 || headSize == 0) {
            throw new IllegalArgumentException("--random_model '" + text + "' needs layers, kv_heads and head_size");
        }
        heads = heads == 0 ? kvHeads : heads;
        hidden = hidden == 0 ? Math.max(32, heads * headSize / 4) : hidden;
        seqLen = seqLen == 0 ? DEFAULT_SEQ_LEN : seqLen;
        return new RandomModelSpec(layers, kvHeads, headSize, heads, hidden, seqLen);
    }

    private static int number(String s, String name) {
        try {
            return Integer.parseInt(s.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--random_model: " + name + " '" + s.trim() + "' is not a number");
        }
    }

    private static void positive(String name, int v) {
        if (v <= 0) {
            throw new IllegalArgumentException("--random_model: " + name + " must be positive, got " + v);
        }
    }

    /** The width of the residual stream. */
    public int dim() {
        return heads * headSize;
    }

    /** The model configuration for a vocabulary. */
    public LlamaConfig config(int vocabSize) {
        return new LlamaConfig(dim(), hiddenDim, layers, heads, kvHeads, vocabSize, seqLen, true);
    }

    /** KV cache bytes per token in float32. */
    public long kvBytesPerToken() {
        return 2L * layers * kvHeads * headSize * Float.BYTES;
    }

    /** The canonical text form, which {@link #parse} reads back. */
    public String format() {
        return layers + "," + kvHeads + "," + headSize + "," + heads + "," + hiddenDim + "," + seqLen;
    }

    /** A short name: {@code random-32x8x128}. */
    public String name() {
        return "random-" + layers + "x" + kvHeads + "x" + headSize;
    }
}
