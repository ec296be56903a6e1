package io.mooncake4j.djl.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Linear;

import java.util.Arrays;
import java.util.Objects;

/**
 * The Llama transformer of llama2.c's {@code run.c} in DJL {@link NDArray} operations: RMSNorm (eps
 * 1e-5), rotary position embeddings on queries and keys, grouped-query attention with a causal
 * mask, a SwiGLU feed-forward network, and a final RMSNorm and classifier.
 *
 * <p>{@link #forward(int[], int, KvCache)} runs several tokens at once (prefill) or one (decode),
 * writing their keys and values into a {@link KvCache} and attending over all cached positions
 * before them. The model borrows the {@link LlamaWeights}, which must stay open while it is used;
 * its own small tables live in a sub-manager of the weights' manager. A forward keeps no state in
 * the model: all of it is in the cache and in a sub-manager closed before the forward returns; each
 * layer's intermediates are freed as soon as the layer ends, so a long prefill needs about one
 * layer's worth of temporary memory.
 *
 * <p>Small models issue many tiny tensor operations per token; on CPUs they decode faster with one
 * PyTorch thread ({@code -Dai.djl.pytorch.num_threads=1}), especially on busy machines.
 */
public final class LlamaModel implements AutoCloseable {

    private static final float RMS_EPS = 1e-5f;
    private static final float ROPE_THETA = 10000.0f;

    private final LlamaWeights weights;
    private final LlamaConfig config;
    private final NDManager manager;

    /** cos(pos * freq) for both members of each pair, {@code [seqLen, headSize]}. */
    private final NDArray ropeCos;

    /** (-sin, +sin)(pos * freq) for each pair, {@code [seqLen, headSize]}. */
    private final NDArray ropeSin;

    /**
     * Builds the model over loaded weights.
     *
     * @param weights the weights, which must outlive the model
     */
    public LlamaModel(LlamaWeights weights) {
        this.weights = Objects.requireNonNull(weights, "weights");
        this.config = weights.config();
        this.manager = weights.tokenEmbedding().getManager().newSubManager();
        int hs = config.headSize();
        float[] cos = new float[config.seqLen() * hs];
        float[] sin = new float[config.seqLen() * hs];
        for (int pos = 0; pos < config.seqLen(); pos++) {
            for (int i = 0; i < hs; i += 2) {
                // run.c: freq = 1.0f / powf(10000.0f, head_dim / (float)head_size)
                float freq = 1.0f / (float) Math.pow(ROPE_THETA, i / (float) hs);
                float val = pos * freq;
                float c = (float) Math.cos(val);
                float s = (float) Math.sin(val);
                cos[pos * hs + i] = c;
                cos[pos * hs + i + 1] = c;
                sin[pos * hs + i] = -s;
                sin[pos * hs + i + 1] = s;
            }
        }
        Shape shape = new Shape(config.seqLen(), hs);
        this.ropeCos = manager.create(cos, shape);
        this.ropeSin = manager.create(sin, shape);
    }

    /**
     * Returns the configuration.
     *
     * @return the configuration
     */
    public LlamaConfig config() {
        return config;
    }

    /**
     * Returns the weights.
     *
     * @return the weights
     */
    public LlamaWeights weights() {
        return weights;
    }

    /**
     * Runs {@code tokens} at positions {@code [startPos, startPos + tokens.length)}, with the cache
     * holding the keys and values of positions {@code [0, startPos)}; writes theirs, and returns
     * the logits of the last position. The result is attached to the model's manager: close it, or
     * use {@link #forward(int[], int, KvCache, NDManager)}.
     *
     * @param tokens the token ids, at least one
     * @param startPos the position of the first token
     * @param cache the cache
     * @return FLOAT32 logits {@code [vocabSize]}
     */
    public NDArray forward(int[] tokens, int startPos, KvCache cache) {
        return forward(tokens, startPos, cache, manager);
    }

    /**
     * Like {@link #forward(int[], int, KvCache)}, with the result attached to {@code output}.
     *
     * @param tokens the token ids, at least one
     * @param startPos the position of the first token
     * @param cache the cache
     * @param output the manager the logits are attached to
     * @return FLOAT32 logits of the last position, {@code [vocabSize]}
     */
    public NDArray forward(int[] tokens, int startPos, KvCache cache, NDManager output) {
        return run(tokens, startPos, cache, output, false);
    }

    /**
     * Like {@link #forward(int[], int, KvCache, NDManager)}, returning the logits of every
     * position.
     *
     * @param tokens the token ids, at least one
     * @param startPos the position of the first token
     * @param cache the cache
     * @param output the manager the logits are attached to
     * @return FLOAT32 logits {@code [tokens.length, vocabSize]}
     */
    public NDArray forwardAll(int[] tokens, int startPos, KvCache cache, NDManager output) {
        return run(tokens, startPos, cache, output, true);
    }

    /**
     * {@link #forward(int[], int, KvCache, NDManager)} with the logits copied to a Java array.
     *
     * @param tokens the token ids, at least one
     * @param startPos the position of the first token
     * @param cache the cache
     * @return the logits of the last position, {@code vocabSize} floats
     */
    public float[] forwardLogits(int[] tokens, int startPos, KvCache cache) {
        try (NDManager out = manager.newSubManager()) {
            return forward(tokens, startPos, cache, out).toFloatArray();
        }
    }

    /**
     * One decode step: {@link #forwardLogits(int[], int, KvCache)} of one token.
     *
     * @param token the token id
     * @param pos its position
     * @param cache the cache
     * @return the logits, {@code vocabSize} floats
     */
    public float[] step(int token, int pos, KvCache cache) {
        return forwardLogits(new int[] {token}, pos, cache);
    }

    /**
     * Allocates a {@link ContiguousKvCache} for this model in a sub-manager of the model's; close
     * it when done.
     *
     * @param capacity the number of positions, at most {@code seqLen}
     * @return the cache
     */
    public ContiguousKvCache newCache(int capacity) {
        return new ContiguousKvCache(config, capacity, manager);
    }

    /** Frees the model's tables (not the weights). */
    @Override
    public void close() {
        manager.close();
    }

    private NDArray run(
            int[] tokens, int startPos, KvCache cache, NDManager output, boolean allLogits) {
        check(tokens, startPos, cache);
        int n = tokens.length;
        int end = startPos + n;
        int hs = config.headSize();
        try (NDManager step = manager.newSubManager()) {
            NDArray ids = step.create(tokens);
            NDArray x = weights.tokenEmbedding().get(step, new NDIndex("{}", ids));
            NDIndex positions = new NDIndex().addSliceDim(startPos, end);
            Shape ropeShape = new Shape(n, 1, hs / 2, 2);
            NDArray cos = ropeCos.get(step, positions).reshape(ropeShape);
            NDArray sin = ropeSin.get(step, positions).reshape(ropeShape);
            NDArray mask = n > 1 ? causalMask(step, n, startPos) : null;
            for (int l = 0; l < config.nLayers(); l++) {
                x = layer(l, x, cos, sin, mask, startPos, cache, step);
            }
            if (!allLogits) {
                x = x.get(step, new NDIndex().addSliceDim(n - 1, n));
            }
            x = rmsNorm(x, weights.rmsFinal());
            NDArray logits = Linear.linear(x, weights.classifier()).singletonOrThrow();
            if (!allLogits) {
                logits = logits.reshape(config.vocabSize());
            }
            logits.attach(output);
            return logits;
        }
    }

    /**
     * One transformer layer of the residual stream {@code x} ({@code [n, dim]}, attached to {@code
     * step}). Its intermediates (norms, q/k/v, attention scores, the FFN's activations: for a long
     * prompt many times {@code x}'s size) live in a sub-manager closed before it returns, so a
     * forward's peak memory is about one layer's, not every layer's. {@code x} itself is moved
     * into that sub-manager and freed with it; only the new residual stream is attached to {@code
     * step}. (Array operations attach their results to their first operand's manager.)
     */
    private NDArray layer(int l, NDArray x, NDArray cos, NDArray sin, NDArray mask, int startPos, KvCache cache,
            NDManager step) {
        int n = (int) x.getShape().get(0);
        int end = startPos + n;
        int dim = config.dim();
        int kvDim = config.kvDim();
        LlamaWeights.Layer w = weights.layer(l);
        try (NDManager scope = step.newSubManager()) {
            x.attach(scope);
            NDArray h = rmsNorm(x, w.rmsAtt());
            NDList qkv = Linear.linear(h, w.wqkv()).singletonOrThrow().split(new long[] {dim + kvDim}, 1);
            NDArray qk = rope(qkv.get(0), cos, sin, n);
            NDList parts = qk.split(new long[] {dim}, 1);
            cache.write(l, startPos, parts.get(1), qkv.get(1));
            NDArray keys = cache.keys(l, end, scope);
            NDArray values = cache.values(l, end, scope);
            NDArray att = attention(parts.get(0), keys, values, mask, n, end);
            NDArray mid = x.add(Linear.linear(att, w.wo()).singletonOrThrow());
            h = rmsNorm(mid, w.rmsFfn());
            NDList gateUp = Linear.linear(h, w.w13()).singletonOrThrow().split(2, 1);
            NDArray gate = gateUp.get(0);
            NDArray act = gate.mul(Activation.sigmoid(gate)).mul(gateUp.get(1));
            NDArray out = mid.add(Linear.linear(act, w.w2()).singletonOrThrow());
            out.attach(step);
            return out;
        }
    }

    private void check(int[] tokens, int startPos, KvCache cache) {
        Objects.requireNonNull(tokens, "tokens");
        Objects.requireNonNull(cache, "cache");
        if (tokens.length == 0) {
            throw new IllegalArgumentException("no tokens to forward");
        }
        if (cache.layers() != config.nLayers() || cache.kvDim() != config.kvDim()) {
            throw new IllegalArgumentException(
                    "cache has "
                            + cache.layers()
                            + " layers x kvDim "
                            + cache.kvDim()
                            + ", the model "
                            + config.nLayers()
                            + " x "
                            + config.kvDim());
        }
        long end = (long) startPos + tokens.length;
        if (startPos < 0 || end > config.seqLen() || end > cache.capacity()) {
            throw new IllegalArgumentException(
                    "positions ["
                            + startPos
                            + ", "
                            + end
                            + ") exceed the model's seqLen "
                            + config.seqLen()
                            + " or the cache capacity "
                            + cache.capacity());
        }
        for (int t : tokens) {
            if (t < 0 || t >= config.vocabSize()) {
                throw new IllegalArgumentException(
                        "token " + t + " out of vocabulary [0, " + config.vocabSize() + ")");
            }
        }
    }

    /** run.c: {@code o = w * (x / sqrt(mean(x^2) + eps))}, per row. */
    private static NDArray rmsNorm(NDArray x, NDArray weight) {
        NDArray inv = x.square().mean(new int[] {-1}, true).add(RMS_EPS).pow(-0.5f);
        return x.mul(inv).mul(weight);
    }

    /**
     * Rotates each pair {@code (2i, 2i+1)} of every head in {@code x} ({@code [n, heads *
     * headSize]}) by the angle of its position: {@code (a cos - b sin, a sin + b cos)}.
     */
    private NDArray rope(NDArray x, NDArray cos, NDArray sin, int n) {
        int hs = config.headSize();
        long heads = x.getShape().get(1) / hs;
        NDArray pairs = x.reshape(n, heads, hs / 2, 2);
        NDArray rotated = pairs.mul(cos).add(pairs.flip(3).mul(sin));
        return rotated.reshape(n, heads * hs);
    }

    /**
     * Attention of {@code n} queries ({@code [n, dim]}, at the last {@code n} of {@code length}
     * positions) over the cached keys and values ({@code [length, kvDim]}); query head {@code h}
     * reads key/value head {@code h / kvMul}.
     */
    private NDArray attention(
            NDArray q, NDArray keys, NDArray values, NDArray mask, int n, int length) {
        int nKv = config.nKvHeads();
        int kvMul = config.kvMul();
        int hs = config.headSize();
        // [nKv, kvMul * n, hs]: the kvMul query heads of a group, each for n positions
        NDArray queries =
                n == 1
                        ? q.reshape(nKv, kvMul, hs)
                        : q.reshape(n, config.nHeads(), hs)
                                .transpose(1, 0, 2)
                                .reshape(nKv, (long) kvMul * n, hs);
        NDArray k = keys.reshape(length, nKv, hs).transpose(1, 2, 0); // [nKv, hs, length]
        NDArray v = values.reshape(length, nKv, hs).transpose(1, 0, 2); // [nKv, length, hs]
        NDArray scores = queries.matMul(k).div((float) Math.sqrt(hs));
        if (mask != null) {
            scores = scores.reshape(nKv, kvMul, n, length).add(mask);
        }
        NDArray probs = scores.softmax(-1).reshape(nKv, (long) kvMul * n, length);
        NDArray out = probs.matMul(v); // [nKv, kvMul * n, hs]
        if (n == 1) {
            return out.reshape(1, config.dim());
        }
        return out.reshape(config.nHeads(), n, hs).transpose(1, 0, 2).reshape(n, config.dim());
    }

    /** {@code [n, startPos + n]}: 0 where query i may see key t ({@code t <= startPos + i}). */
    private static NDArray causalMask(NDManager m, int n, int startPos) {
        int length = startPos + n;
        float[] mask = new float[n * length];
        for (int i = 0; i < n; i++) {
            Arrays.fill(
                    mask, i * length + startPos + i + 1, (i + 1) * length, Float.NEGATIVE_INFINITY);
        }
        return m.create(mask, new Shape(n, length));
    }
}
