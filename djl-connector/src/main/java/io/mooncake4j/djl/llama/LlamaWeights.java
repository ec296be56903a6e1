package io.mooncake4j.djl.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;

import java.io.EOFException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Objects;
import java.util.SplittableRandom;

/**
 * The weights of a Llama model as FLOAT32 {@link NDArray}s, each matrix row-major {@code [out][in]}
 * as llama2.c's {@code matmul} reads it.
 *
 * <p>Loads llama2.c checkpoints in the legacy ("version 0") layout and in the "ak42" version 1
 * layout (float32), or builds a seeded random model of any size. The arrays live in a sub-manager
 * of the manager given at creation; {@link #close()} frees them.
 */
public final class LlamaWeights implements AutoCloseable {

    /** The magic number at the start of a version 1+ llama2.c checkpoint ("ak42"). */
    static final int MAGIC = 0x616b3432;

    private static final int LEGACY_HEADER_BYTES = 7 * Integer.BYTES;
    private static final int V1_HEADER_BYTES = 256;
    private static final float RANDOM_STDDEV = 0.02f;

    /**
     * The weights of one transformer layer. The query, key and value projections are row blocks of
     * one fused matrix {@code wqkv}, and the gate and up projections row blocks of {@code w13}, so
     * that the model needs one matrix product for each; {@code wq}, {@code wk}, {@code wv}, {@code
     * w1} and {@code w3} are views of them (no copies).
     *
     * @param rmsAtt RMSNorm weight before attention, {@code [dim]}
     * @param wq query projection, {@code [dim, dim]}
     * @param wk key projection, {@code [kvDim, dim]}
     * @param wv value projection, {@code [kvDim, dim]}
     * @param wo attention output projection, {@code [dim, dim]}
     * @param rmsFfn RMSNorm weight before the feed-forward network, {@code [dim]}
     * @param w1 gate projection, {@code [hiddenDim, dim]}
     * @param w2 down projection, {@code [dim, hiddenDim]}
     * @param w3 up projection, {@code [hiddenDim, dim]}
     * @param wqkv {@code wq}, {@code wk} and {@code wv} stacked, {@code [dim + 2 * kvDim, dim]}
     * @param w13 {@code w1} and {@code w3} stacked, {@code [2 * hiddenDim, dim]}
     */
    public record Layer(
            NDArray rmsAtt,
            NDArray wq,
            NDArray wk,
            NDArray wv,
            NDArray wo,
            NDArray rmsFfn,
            NDArray w1,
            NDArray w2,
            NDArray w3,
            NDArray wqkv,
            NDArray w13) {}

    private final LlamaConfig config;
    private final NDManager manager;
    private final NDArray tokenEmbedding;
    private final Layer[] layers;
    private final NDArray rmsFinal;
    private final NDArray classifier;

    private LlamaWeights(
            LlamaConfig config,
            NDManager manager,
            NDArray tokenEmbedding,
            Layer[] layers,
            NDArray rmsFinal,
            NDArray classifier) {
        this.config = config;
        this.manager = manager;
        this.tokenEmbedding = tokenEmbedding;
        this.layers = layers;
        this.rmsFinal = rmsFinal;
        this.classifier = classifier;
    }

    /**
     * Reads only the configuration from a llama2.c checkpoint header.
     *
     * @param checkpoint the checkpoint file
     * @return its configuration
     * @throws IOException if the file cannot be read or its header is invalid
     */
    public static LlamaConfig readConfig(Path checkpoint) throws IOException {
        try (FileChannel ch = FileChannel.open(checkpoint, StandardOpenOption.READ)) {
            return readHeader(checkpoint, ch).config;
        }
    }

    /**
     * Loads a llama2.c checkpoint: the legacy layout (7 int32 header, negative vocab size meaning a
     * separate classifier) or version 1 ("ak42" magic, 256-byte header, float32 weights).
     *
     * @param checkpoint the checkpoint file
     * @param manager the manager under which a sub-manager holds the weights
     * @return the weights
     * @throws IOException if the file cannot be read, is too short or has an invalid header
     */
    public static LlamaWeights load(Path checkpoint, NDManager manager) throws IOException {
        Objects.requireNonNull(manager, "manager");
        try (FileChannel ch = FileChannel.open(checkpoint, StandardOpenOption.READ)) {
            Header header = readHeader(checkpoint, ch);
            LlamaConfig c = header.config;
            long floats = header.legacy ? legacyFloatCount(c) : c.parameterCount();
            long needed = header.bytes + floats * Float.BYTES;
            if (ch.size() < needed) {
                throw new IOException(
                        "checkpoint "
                                + checkpoint
                                + " is too short: "
                                + c
                                + " needs "
                                + needed
                                + " bytes, the file has "
                                + ch.size());
            }
            ch.position(header.bytes);
            FloatSource source = new FileSource(ch);
            try {
                return assemble(c, source, manager, header.legacy);
            } catch (UncheckedIOException e) {
                throw new IOException(
                        "cannot read checkpoint " + checkpoint + ": " + e.getCause().getMessage(),
                        e.getCause());
            }
        }
    }

    /**
     * Builds a random model, deterministic given the seed: matrices are normal with standard
     * deviation 0.02, RMSNorm weights are 1. Tensors are drawn in the legacy checkpoint order.
     *
     * @param config the configuration
     * @param seed the random seed
     * @param manager the manager under which a sub-manager holds the weights
     * @return the weights
     */
    public static LlamaWeights random(LlamaConfig config, long seed, NDManager manager) {
        Objects.requireNonNull(config, "config");
        Objects.requireNonNull(manager, "manager");
        return assemble(config, new RandomSource(seed), manager, true);
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
     * Returns the token embedding table.
     *
     * @return {@code [vocabSize, dim]}
     */
    public NDArray tokenEmbedding() {
        return tokenEmbedding;
    }

    /**
     * Returns the weights of one layer.
     *
     * @param layer the layer index, from 0
     * @return the layer's weights
     */
    public Layer layer(int layer) {
        Objects.checkIndex(layer, layers.length);
        return layers[layer];
    }

    /**
     * Returns the final RMSNorm weight.
     *
     * @return {@code [dim]}
     */
    public NDArray rmsFinal() {
        return rmsFinal;
    }

    /**
     * Returns the classifier; the same array as {@link #tokenEmbedding()} when the config's {@code
     * sharedClassifier} is set.
     *
     * @return {@code [vocabSize, dim]}
     */
    public NDArray classifier() {
        return classifier;
    }

    /** Frees the weight arrays. */
    @Override
    public void close() {
        manager.close();
    }

    private record Header(LlamaConfig config, int bytes, boolean legacy) {}

    private static Header readHeader(Path file, FileChannel ch) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(V1_HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        while (buf.hasRemaining() && ch.read(buf, buf.position()) > 0) {
            // read the header, or the whole file when it is shorter
        }
        buf.flip();
        if (buf.remaining() < LEGACY_HEADER_BYTES) {
            throw new IOException(
                    "checkpoint "
                            + file
                            + " is too short for a header: "
                            + buf.remaining()
                            + " bytes");
        }
        int first = buf.getInt(0);
        try {
            if (first == MAGIC) {
                int version = buf.getInt(4);
                if (version != 1) {
                    throw new IOException(
                            "checkpoint "
                                    + file
                                    + " has llama2.c format version "
                                    + version
                                    + "; only the legacy layout and version 1 (float32) are"
                                    + " supported");
                }
                if (buf.remaining() < V1_HEADER_BYTES) {
                    throw new IOException(
                            "checkpoint " + file + " is too short for a version 1 header");
                }
                buf.position(8);
                int[] p = new int[7];
                buf.asIntBuffer().get(p);
                boolean shared = buf.get(8 + 7 * Integer.BYTES) != 0;
                return new Header(
                        new LlamaConfig(p[0], p[1], p[2], p[3], p[4], p[5], p[6], shared),
                        V1_HEADER_BYTES,
                        false);
            }
            int[] p = new int[7];
            buf.asIntBuffer().get(p);
            return new Header(
                    new LlamaConfig(p[0], p[1], p[2], p[3], p[4], Math.abs(p[5]), p[6], p[5] > 0),
                    LEGACY_HEADER_BYTES,
                    true);
        } catch (IllegalArgumentException e) {
            throw new IOException(
                    "checkpoint " + file + " has an invalid header: " + e.getMessage(), e);
        }
    }

    private static long legacyFloatCount(LlamaConfig c) {
        return c.parameterCount() + ropeTableFloats(c);
    }

    /** The legacy layout's freq_cis_real and freq_cis_imag tables, which run.c skips. */
    private static long ropeTableFloats(LlamaConfig c) {
        return 2L * c.seqLen() * (c.headSize() / 2);
    }

    /**
     * Reads the tensors in the legacy order (token embedding, per-kind layer tensors, final norm,
     * RoPE tables, classifier) or the version 1 order (norms first, then the embedding and the
     * per-kind layer matrices, then the classifier).
     */
    private static LlamaWeights assemble(
            LlamaConfig c, FloatSource src, NDManager parent, boolean legacy) {
        NDManager m = parent.newSubManager();
        try {
            int dim = c.dim();
            int kv = c.kvDim();
            int hidden = c.hiddenDim();
            int layers = c.nLayers();
            NDArray emb = null;
            NDArray[] rmsAtt;
            NDArray[] rmsFfn = null;
            NDArray rmsFinal = null;
            if (legacy) {
                emb = src.matrix(m, c.vocabSize(), dim);
                rmsAtt = src.norms(m, layers, dim);
            } else {
                rmsAtt = src.norms(m, layers, dim);
                rmsFfn = src.norms(m, layers, dim);
                rmsFinal = src.norms(m, 1, dim)[0];
                emb = src.matrix(m, c.vocabSize(), dim);
            }
            float[][] qkv = new float[layers][Math.multiplyExact(dim + 2 * kv, dim)];
            src.fill(qkv, 0, dim * dim);
            src.fill(qkv, dim * dim, kv * dim);
            src.fill(qkv, (dim + kv) * dim, kv * dim);
            NDArray[] wqkv = create(m, qkv, dim + 2 * kv, dim);
            NDArray[] wo = src.matrices(m, layers, dim, dim);
            if (legacy) {
                rmsFfn = src.norms(m, layers, dim);
            }
            float[][] gateUp = new float[layers][Math.multiplyExact(2 * hidden, dim)];
            src.fill(gateUp, 0, hidden * dim);
            NDArray[] w2 = src.matrices(m, layers, dim, hidden);
            src.fill(gateUp, hidden * dim, hidden * dim);
            NDArray[] w13 = create(m, gateUp, 2 * hidden, dim);
            if (legacy) {
                rmsFinal = src.norms(m, 1, dim)[0];
                src.skip(ropeTableFloats(c));
            }
            NDArray cls = c.sharedClassifier() ? emb : src.matrix(m, c.vocabSize(), dim);
            Layer[] out = new Layer[layers];
            for (int l = 0; l < layers; l++) {
                out[l] =
                        new Layer(
                                rmsAtt[l],
                                rows(wqkv[l], 0, dim),
                                rows(wqkv[l], dim, dim + kv),
                                rows(wqkv[l], dim + kv, dim + 2 * kv),
                                wo[l],
                                rmsFfn[l],
                                rows(w13[l], 0, hidden),
                                w2[l],
                                rows(w13[l], hidden, 2 * hidden),
                                wqkv[l],
                                w13[l]);
            }
            return new LlamaWeights(c, m, emb, out, rmsFinal, cls);
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    private static NDArray[] create(NDManager m, float[][] data, int rows, int cols) {
        NDArray[] out = new NDArray[data.length];
        for (int i = 0; i < data.length; i++) {
            out[i] = m.create(data[i], new Shape(rows, cols));
            data[i] = null;
        }
        return out;
    }

    private static NDArray rows(NDArray matrix, int from, int to) {
        return matrix.get(new NDIndex().addSliceDim(from, to));
    }

    /** Supplies the weights' floats in checkpoint order. */
    private abstract static class FloatSource {

        /** Returns the next {@code count} floats of a matrix. */
        abstract float[] weights(int count);

        /** Reads the next {@code count} floats of a matrix into {@code dst[offset...]}. */
        abstract void read(float[] dst, int offset, int count);

        /** Returns the next {@code count} floats of an RMSNorm weight. */
        abstract float[] normWeights(int count);

        /** Skips {@code count} floats. */
        abstract void skip(long count);

        /** Reads one block of {@code count} floats into each array, at {@code offset}. */
        final void fill(float[][] dst, int offset, int count) {
            for (float[] d : dst) {
                read(d, offset, count);
            }
        }

        final NDArray matrix(NDManager m, int rows, int cols) {
            return m.create(weights(Math.multiplyExact(rows, cols)), new Shape(rows, cols));
        }

        final NDArray[] matrices(NDManager m, int n, int rows, int cols) {
            NDArray[] out = new NDArray[n];
            for (int i = 0; i < n; i++) {
                out[i] = matrix(m, rows, cols);
            }
            return out;
        }

        final NDArray[] norms(NDManager m, int n, int size) {
            NDArray[] out = new NDArray[n];
            for (int i = 0; i < n; i++) {
                out[i] = m.create(normWeights(size), new Shape(size));
            }
            return out;
        }
    }

    /** Reads little-endian float32 values from a file channel at its position. */
    private static final class FileSource extends FloatSource {
        private static final int CHUNK_FLOATS = 1 << 20;

        private final FileChannel channel;
        private final ByteBuffer buffer =
                ByteBuffer.allocate(CHUNK_FLOATS * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);

        FileSource(FileChannel channel) {
            this.channel = channel;
        }

        @Override
        float[] weights(int count) {
            float[] out = new float[count];
            read(out, 0, count);
            return out;
        }

        @Override
        void read(float[] dst, int offset, int count) {
            for (int done = 0; done < count; ) {
                int n = Math.min(count - done, CHUNK_FLOATS);
                buffer.clear().limit(n * Float.BYTES);
                try {
                    while (buffer.hasRemaining()) {
                        if (channel.read(buffer) < 0) {
                            throw new EOFException("the file ended early");
                        }
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                buffer.flip();
                buffer.asFloatBuffer().get(dst, offset + done, n);
                done += n;
            }
        }

        @Override
        float[] normWeights(int count) {
            return weights(count);
        }

        @Override
        void skip(long count) {
            try {
                channel.position(channel.position() + count * Float.BYTES);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** Draws seeded normal weights; RMSNorm weights are 1. */
    private static final class RandomSource extends FloatSource {
        private final SplittableRandom random;

        RandomSource(long seed) {
            this.random = new SplittableRandom(seed);
        }

        @Override
        float[] weights(int count) {
            float[] out = new float[count];
            read(out, 0, count);
            return out;
        }

        @Override
        void read(float[] dst, int offset, int count) {
            for (int i = offset; i < offset + count; i++) {
                dst[i] = (float) random.nextGaussian() * RANDOM_STDDEV;
            }
        }

        @Override
        float[] normWeights(int count) {
            float[] out = new float[count];
            Arrays.fill(out, 1f);
            return out;
        }

        @Override
        void skip(long count) {
            // random models have no RoPE tables
        }
    }
}
