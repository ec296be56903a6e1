package io.mooncake4j.samples.serving.model;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import io.mooncake4j.djl.llama.Generator;
import io.mooncake4j.djl.llama.LlamaConfig;
import io.mooncake4j.djl.llama.LlamaModel;
import io.mooncake4j.djl.llama.LlamaWeights;
import io.mooncake4j.djl.llama.Tokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A loaded model, ready to serve: DJL (PyTorch) weights, the {@link LlamaModel}, its tokenizer and
 * a {@link Generator}. Forwards may run on several threads at once (each request with its own KV
 * cache and sampler). Closing frees the native memory.
 */
public final class ServingModel implements AutoCloseable {
    /** Tokens of the byte-level tokenizer: unk, BOS, EOS, then the 256 bytes. */
    public static final int BYTE_VOCAB = 3 + 256;

    private final ModelSpec spec;
    private final NDManager manager;
    private final LlamaWeights weights;
    private final LlamaModel model;
    private final Tokenizer tokenizer;
    private final Generator generator;
    private final long loadNanos;
    private final AtomicBoolean closed = new AtomicBoolean();

    private ServingModel(ModelSpec spec, NDManager manager, LlamaWeights weights, Tokenizer tokenizer, long loadNanos) {
        this.spec = spec;
        this.manager = manager;
        this.weights = weights;
        this.model = new LlamaModel(weights);
        this.tokenizer = tokenizer;
        this.generator = new Generator(model, tokenizer);
        this.loadNanos = loadNanos;
    }

    /**
     * Sets DJL up for these tools before its first use: offline (nothing is downloaded; the PyTorch
     * native library comes from the pytorch-native-cpu jar) and {@code torchThreads} intra-op
     * threads unless {@code -Dai.djl.pytorch.num_threads} says otherwise. One thread suits small
     * models and several JVMs sharing a few cores.
     */
    public static void configureDjl(int torchThreads) {
        if (System.getenv("DJL_OFFLINE") == null) {
            setIfAbsent("ai.djl.offline", "true");
        }
        int t = Math.max(1, torchThreads);
        setIfAbsent("ai.djl.pytorch.num_threads", Integer.toString(t));
        setIfAbsent("ai.djl.pytorch.num_interop_threads", "1");
        // DJL's start-up chatter (engine banner; "no GPU" on CPU hosts) is noise for these tools
        String level = System.getProperty("org.slf4j.simpleLogger.defaultLogLevel", "info");
        if (!level.equalsIgnoreCase("debug") && !level.equalsIgnoreCase("trace")) {
            setIfAbsent("org.slf4j.simpleLogger.log.ai.djl", "warn");
            setIfAbsent("org.slf4j.simpleLogger.log.ai.djl.util.cuda.CudaUtils", "error");
        }
    }

    private static void setIfAbsent(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    /** Loads the model a spec names: reads the checkpoint, or generates the seeded random weights. */
    public static ServingModel load(ModelSpec spec) throws IOException {
        long t0 = System.nanoTime();
        NDManager manager = Engine.getEngine("PyTorch").newBaseManager();
        try {
            Tokenizer tokenizer;
            LlamaWeights weights;
            if (spec.isRandom()) {
                int vocab = spec.tokenizer() == null ? BYTE_VOCAB : tokenizerVocab(spec.tokenizer());
                tokenizer = loadTokenizer(spec.tokenizer(), vocab);
                LlamaConfig config = spec.random().config(vocab);
                weights = LlamaWeights.random(config, spec.seed(), manager);
            } else {
                LlamaConfig config = LlamaWeights.readConfig(spec.checkpoint());
                tokenizer = loadTokenizer(spec.tokenizer(), config.vocabSize());
                weights = LlamaWeights.load(spec.checkpoint(), manager);
            }
            return new ServingModel(spec, manager, weights, tokenizer, System.nanoTime() - t0);
        } catch (IOException | RuntimeException e) {
            manager.close();
            throw e;
        }
    }

    /** Loads only the tokenizer of a model (what a client printing its tokens needs). */
    public static Tokenizer loadTokenizer(ModelSpec spec) throws IOException {
        if (spec.isRandom()) {
            return loadTokenizer(spec.tokenizer(), spec.tokenizer() == null ? BYTE_VOCAB : tokenizerVocab(spec.tokenizer()));
        }
        return loadTokenizer(spec.tokenizer(), LlamaWeights.readConfig(spec.checkpoint()).vocabSize());
    }

    /** The number of tokens a llama2.c tokenizer file holds (it does not say; count the records). */
    static int tokenizerVocab(Path file) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < 4) {
            throw new IOException("tokenizer " + file + " is too short");
        }
        b.getInt();
        int n = 0;
        while (b.remaining() >= 8) {
            b.getFloat();
            int len = b.getInt();
            if (len < 0 || len > b.remaining()) {
                throw new IOException("tokenizer " + file + " is malformed at token " + n);
            }
            b.position(b.position() + len);
            n++;
        }
        if (b.hasRemaining() || n == 0) {
            throw new IOException("tokenizer " + file + " is malformed: " + b.remaining() + " trailing bytes");
        }
        return n;
    }

    private static Tokenizer loadTokenizer(Path file, int vocab) throws IOException {
        if (file != null) {
            return Tokenizer.load(file, vocab);
        }
        if (vocab != BYTE_VOCAB) {
            throw new IOException("the byte-level tokenizer has " + BYTE_VOCAB + " tokens but the model has " + vocab
                    + ": pass --tokenizer");
        }
        Path tmp = Files.createTempFile("mooncake4j-bytes-", ".tok");
        try {
            Files.write(tmp, byteTokenizer());
            return Tokenizer.load(tmp, BYTE_VOCAB);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * A llama2.c tokenizer file with no merges: unk, BOS, EOS, then token {@code 3 + b} = the raw
     * byte {@code b}, so any text encodes one token per byte and decodes back.
     */
    static byte[] byteTokenizer() {
        String[] special = {"<unk>", "\n<s>\n", "\n</s>\n"};
        int size = 4;
        for (String s : special) {
            size += 8 + s.length();
        }
        size += 256 * 9;
        ByteBuffer b = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(6);
        for (String s : special) {
            b.putFloat(0f).putInt(s.length()).put(s.getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        }
        for (int i = 0; i < 256; i++) {
            b.putFloat(0f).putInt(1).put((byte) i);
        }
        return b.array();
    }

    /** What was loaded. */
    public ModelSpec spec() {
        return spec;
    }

    /** The API name. */
    public String name() {
        return spec.name();
    }

    /** The configuration. */
    public LlamaConfig config() {
        return model.config();
    }

    /** The model. */
    public LlamaModel model() {
        return model;
    }

    /** The tokenizer. */
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** A generator over the model (stateless, shareable). */
    public Generator generator() {
        return generator;
    }

    /** The manager the weights live under (parent for KV cache views). */
    public NDManager manager() {
        return manager;
    }

    /** How long loading took. */
    public long loadNanos() {
        return loadNanos;
    }

    /** One line for the logs. */
    public String describe() {
        LlamaConfig c = config();
        return spec.name() + " (" + c.nLayers() + " layers, dim " + c.dim() + ", " + c.nHeads() + " heads, "
                + c.nKvHeads() + " KV heads x " + c.headSize() + ", vocab " + c.vocabSize() + ", seq_len " + c.seqLen()
                + ", " + (c.kvBytesPerToken() >= 1024 ? (c.kvBytesPerToken() >> 10) + " KiB" : c.kvBytesPerToken() + " B")
                + " KV/token; loaded in " + (loadNanos / 1_000_000) + " ms)";
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            try {
                model.close();
            } finally {
                manager.close();
            }
        }
    }

    /** Loads, turning IOException into an unchecked one (for lambdas). */
    public static ServingModel loadUnchecked(ModelSpec spec) {
        try {
            return load(spec);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
