package io.mooncake4j.djl.llama;

/**
 * The hyperparameters of a Llama model, as in llama2.c's {@code Config}.
 *
 * @param dim the width of the residual stream (transformer dimension)
 * @param hiddenDim the inner width of the SwiGLU feed-forward network
 * @param nLayers the number of transformer layers
 * @param nHeads the number of query heads
 * @param nKvHeads the number of key/value heads (fewer than {@code nHeads} for grouped-query
 *     attention); must divide {@code nHeads}
 * @param vocabSize the number of tokens
 * @param seqLen the maximum sequence length (positions)
 * @param sharedClassifier whether the output classifier is the token-embedding matrix
 */
public record LlamaConfig(
        int dim,
        int hiddenDim,
        int nLayers,
        int nHeads,
        int nKvHeads,
        int vocabSize,
        int seqLen,
        boolean sharedClassifier) {

    /** Validates the hyperparameters. */
    public LlamaConfig {
        requirePositive("dim", dim);
        requirePositive("hiddenDim", hiddenDim);
        requirePositive("nLayers", nLayers);
        requirePositive("nHeads", nHeads);
        requirePositive("nKvHeads", nKvHeads);
        requirePositive("vocabSize", vocabSize);
        requirePositive("seqLen", seqLen);
        if (dim % nHeads != 0) {
            throw new IllegalArgumentException(
                    "dim " + dim + " is not a multiple of nHeads " + nHeads);
        }
        if ((dim / nHeads) % 2 != 0) {
            throw new IllegalArgumentException(
                    "head size " + dim / nHeads + " must be even for rotary embeddings");
        }
        if (nHeads % nKvHeads != 0) {
            throw new IllegalArgumentException(
                    "nHeads " + nHeads + " is not a multiple of nKvHeads " + nKvHeads);
        }
    }

    /**
     * Returns the size of one attention head, {@code dim / nHeads}.
     *
     * @return the head size
     */
    public int headSize() {
        return dim / nHeads;
    }

    /**
     * Returns the width of one position's keys (or values) in one layer, {@code nKvHeads *
     * headSize()}.
     *
     * @return the key/value width
     */
    public int kvDim() {
        return nKvHeads * headSize();
    }

    /**
     * Returns how many query heads share one key/value head, {@code nHeads / nKvHeads}.
     *
     * @return the grouped-query factor
     */
    public int kvMul() {
        return nHeads / nKvHeads;
    }

    /**
     * Returns the number of float32 values in the weights (llama2.c layout, without the legacy RoPE
     * tables).
     *
     * @return the parameter count
     */
    public long parameterCount() {
        long perLayer =
                2L * dim
                        + (long) dim * dim * 2
                        + (long) kvDim() * dim * 2
                        + (long) hiddenDim * dim * 3;
        return (long) vocabSize * dim * (sharedClassifier ? 1 : 2) + perLayer * nLayers + dim;
    }

    /**
     * Returns the bytes of K and V (float32) that one position takes over all layers.
     *
     * @return the key/value bytes per token
     */
    public long kvBytesPerToken() {
        return 2L * nLayers * kvDim() * Float.BYTES;
    }

    private static void requirePositive(String name, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be positive, got " + value);
        }
    }
}
