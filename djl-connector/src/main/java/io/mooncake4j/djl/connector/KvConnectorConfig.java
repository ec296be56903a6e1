package io.mooncake4j.djl.connector;

import ai.djl.ndarray.types.DataType;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.kv.KvLayout;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;

/**
 * The connector's settings, read once. Each key is an environment variable name; a value comes
 * from, in order: an explicit setting (the builder, or a DJL model argument / serving.properties
 * entry named by the key in any case, its {@code mc.kv.x} property form or its short form without
 * {@code MC_}, e.g. {@code kv_mode}), the environment variable, the system property ({@code
 * MC_KV_MODE} -> {@code mc.kv.mode}), then the default documented on the key.
 *
 * <p>The layering and the parsing are the engine's: the settings are an {@link EngineConfig}
 * ({@link #settings()}), so a malformed value fails the same way, naming its key and where it came
 * from. This class only maps model-argument spellings to keys and types the values.
 */
public final class KvConnectorConfig {
    /** {@code push} (prefill writes, the default, as Mooncake's vLLM connector) or {@code pull} (decode reads). */
    public static final String MODE = "MC_KV_MODE";
    /** Positions per block; default 16. */
    public static final String BLOCK_TOKENS = "MC_KV_BLOCK_TOKENS";
    /** Blocks in the pool per (layer, K/V); default 0: derived from {@link #POOL_MB}. */
    public static final String NUM_BLOCKS = "MC_KV_NUM_BLOCKS";
    /** Size of the pool in MiB when {@link #NUM_BLOCKS} is 0; default 256. */
    public static final String POOL_MB = "MC_KV_POOL_MB";
    /** Data type of the cache: {@code float32} (default) or {@code float16}. */
    public static final String DTYPE = "MC_KV_DTYPE";
    /** Seconds a prefill result (or a destination) waits to be claimed before its blocks are freed; default 120 (Mooncake's). */
    public static final String UNCLAIMED_TIMEOUT = "MC_KV_UNCLAIMED_TIMEOUT";
    /** Seconds decode waits for a request's KV cache before it gives up and frees the blocks; default 120. */
    public static final String WAIT_TIMEOUT = "MC_KV_WAIT_TIMEOUT";
    /**
     * Seconds blocks stay out of use after decode gave up on a transfer the peer may still be
     * running; default: the engine's {@code MC_TRANSFER_TIMEOUT} plus 2.
     */
    public static final String QUARANTINE = "MC_KV_QUARANTINE";
    /** Threads that submit transfers and send notifications; default 4. */
    public static final String IO_THREADS = "MC_KV_IO_THREADS";
    /**
     * Blocks a decode worker keeps of finished prompts to reuse as prefixes (only the rest is then
     * transferred); default 0: off.
     */
    public static final String PREFIX_CACHE_BLOCKS = "MC_KV_PREFIX_CACHE_BLOCKS";
    /**
     * Seconds a request waits for free blocks when the pool is full ({@link KvConnector#expect},
     * {@link KvConnector#fetch}, {@link KvConnector#startPrefill} without an explicit wait) before
     * it fails with POOL_EXHAUSTED; default 0: fail at once.
     */
    public static final String ALLOC_WAIT = "MC_KV_ALLOC_WAIT";

    /**
     * Where the pool lives: {@code cpu:0} (host memory, the default) or {@code cuda:N} (GPU N's
     * memory; needs {@code mooncake4j-gpu-cuda} and JCuda; DJL arrays cannot wrap it, so a model's
     * paged cache copies positions in and out).
     */
    public static final String LOCATION = "MC_KV_LOCATION";

    private static final String[] KEYS = {
        MODE, BLOCK_TOKENS, NUM_BLOCKS, POOL_MB, DTYPE, UNCLAIMED_TIMEOUT, WAIT_TIMEOUT, QUARANTINE, IO_THREADS,
        PREFIX_CACHE_BLOCKS, ALLOC_WAIT, LOCATION
    };

    private final EngineConfig settings;

    private final TransferMode mode;
    private final int blockTokens;
    private final int numBlocks;
    private final long poolBytes;
    private final DataType dataType;
    private final Duration unclaimedTimeout;
    private final Duration waitTimeout;
    private final Duration quarantine;
    private final int ioThreads;
    private final int prefixCacheBlocks;
    private final Duration allocWait;
    private final MemoryLocation location;

    private KvConnectorConfig(EngineConfig s) {
        this.settings = s;
        this.mode = TransferMode.parse(s.get(MODE, "push"));
        this.blockTokens = (int) s.getLong(BLOCK_TOKENS, 16, 1, 1 << 20);
        this.numBlocks = (int) s.getLong(NUM_BLOCKS, 0, 0, Integer.MAX_VALUE);
        this.poolBytes = s.getLong(POOL_MB, 256, 1, 1L << 24) << 20;
        this.dataType = KvLayout.parseDataType(s.get(DTYPE, "float32"));
        this.unclaimedTimeout = s.getSeconds(UNCLAIMED_TIMEOUT, 120);
        this.waitTimeout = s.getSeconds(WAIT_TIMEOUT, 120);
        this.quarantine = s.get(QUARANTINE) == null ? null : s.getSeconds(QUARANTINE, 32);
        this.ioThreads = (int) s.getLong(IO_THREADS, 4, 1, 256);
        this.prefixCacheBlocks = (int) s.getLong(PREFIX_CACHE_BLOCKS, 0, 0, Integer.MAX_VALUE);
        this.allocWait = isZero(s.get(ALLOC_WAIT)) ? Duration.ZERO : s.getSeconds(ALLOC_WAIT, 0);
        this.location = parseLocation(s.get(LOCATION, "cpu:0"));
    }

    private static MemoryLocation parseLocation(String value) {
        MemoryLocation l;
        try {
            l = MemoryLocation.parse(value);
        } catch (MooncakeException e) {
            l = null;
        }
        if (l == null || !(l.isCuda() || l.equals(MemoryLocation.CPU))) {
            throw new KvException(KvError.INVALID_PARAMS, LOCATION + "='" + value
                    + "' is not where a KV pool can live: use cpu:0 (host memory) or cuda:N (GPU N)");
        }
        return l;
    }

    /** Whether a seconds value is absent or zero (which {@link EngineConfig#getSeconds} refuses). */
    private static boolean isZero(String v) {
        if (v == null) {
            return true;
        }
        try {
            return Double.parseDouble(v) == 0;
        } catch (NumberFormatException e) {
            return false; // getSeconds reports it, naming the key
        }
    }

    /** Settings from the environment and system properties. */
    public static KvConnectorConfig fromEnvironment() {
        return builder().build();
    }

    /**
     * Settings with explicit values from a map (DJL model arguments, serving.properties): keys are
     * matched as the class comment says; other keys are ignored.
     */
    public static KvConnectorConfig fromMap(Map<String, ?> values) {
        Builder b = builder();
        for (Map.Entry<String, ?> e : values.entrySet()) {
            String key = canonicalKey(e.getKey());
            if (key != null && e.getValue() != null) {
                b.set(key, e.getValue().toString());
            }
        }
        return b.build();
    }

    /** The key a map entry names ({@code MC_KV_MODE}, {@code mc.kv.mode}, {@code kv_mode}, ...), or null. */
    static String canonicalKey(String name) {
        if (name == null) {
            return null;
        }
        String n = name.trim();
        if (n.startsWith("option.")) {
            n = n.substring("option.".length());
        }
        n = n.replace('.', '_').toUpperCase(Locale.ROOT);
        if (!n.startsWith("MC_")) {
            n = "MC_" + n;
        }
        for (String k : KEYS) {
            if (k.equals(n)) {
                return k;
            }
        }
        return null;
    }

    /** A builder whose unset values come from the environment. */
    public static Builder builder() {
        return new Builder();
    }

    /** The settings these values were read from (explicit values over the environment). */
    public EngineConfig settings() {
        return settings;
    }

    /** Push or pull. */
    public TransferMode mode() {
        return mode;
    }

    /** Positions per block. */
    public int blockTokens() {
        return blockTokens;
    }

    /** Blocks per (layer, part), or 0 to derive them from {@link #poolBytes()}. */
    public int numBlocks() {
        return numBlocks;
    }

    /** The pool size used when {@link #numBlocks()} is 0. */
    public long poolBytes() {
        return poolBytes;
    }

    /** FLOAT32 or FLOAT16. */
    public DataType dataType() {
        return dataType;
    }

    /** How long an unclaimed prefill result keeps its blocks. */
    public Duration unclaimedTimeout() {
        return unclaimedTimeout;
    }

    /** How long decode waits for a request's KV cache. */
    public Duration waitTimeout() {
        return waitTimeout;
    }

    /** How long blocks stay out of use after an abandoned transfer, given the engine's transfer timeout. */
    public Duration quarantine(Duration engineTransferTimeout) {
        return quarantine != null ? quarantine : engineTransferTimeout.plusSeconds(2);
    }

    /** Threads for submitting transfers and sending notifications. */
    public int ioThreads() {
        return ioThreads;
    }

    /** Blocks a decode worker keeps for prefix reuse; 0 when off. */
    public int prefixCacheBlocks() {
        return prefixCacheBlocks;
    }

    /** How long an allocation waits for free blocks by default; zero: it fails at once. */
    public Duration allocWait() {
        return allocWait;
    }

    /** Where the pool lives: {@code cpu:0} or {@code cuda:N}. */
    public MemoryLocation location() {
        return location;
    }

    /**
     * The layout of a pool for a model's geometry: {@link #numBlocks()} blocks, or as many as fit
     * in {@link #poolBytes()}.
     */
    public KvLayout layout(int layers, int kvHeads, int headSize) {
        KvLayout one = new KvLayout(layers, kvHeads, headSize, blockTokens, 1, dataType);
        int blocks = numBlocks > 0 ? numBlocks : (int) Math.max(1, Math.min(Integer.MAX_VALUE, poolBytes / one.totalBytes()));
        return one.withNumBlocks(blocks);
    }

    @Override
    public String toString() {
        return "KvConnectorConfig[mode " + mode.jsonName() + ", " + blockTokens + " tokens/block, "
                + (numBlocks > 0 ? numBlocks + " blocks" : (poolBytes >> 20) + " MiB") + ", "
                + dataType + ", " + location + ", unclaimed " + unclaimedTimeout.toMillis() + " ms, wait "
                + waitTimeout.toMillis() + " ms"
                + (allocWait.isZero() ? "" : ", alloc wait " + allocWait.toMillis() + " ms") + "]";
    }

    /** Builds a {@link KvConnectorConfig}; explicit values win over the environment. */
    public static final class Builder {
        private final EngineConfig.Builder settings = EngineConfig.builder();

        private Builder() {}

        /** Sets a key (one of this class's constants) explicitly; null removes it. */
        public Builder set(String key, String value) {
            settings.set(key, value);
            return this;
        }

        /** Sets {@link #MODE}. */
        public Builder mode(TransferMode mode) {
            return set(MODE, mode.jsonName());
        }

        /** Sets {@link #BLOCK_TOKENS}. */
        public Builder blockTokens(int tokens) {
            return set(BLOCK_TOKENS, Integer.toString(tokens));
        }

        /** Sets {@link #NUM_BLOCKS}. */
        public Builder numBlocks(int blocks) {
            return set(NUM_BLOCKS, Integer.toString(blocks));
        }

        /** Sets {@link #DTYPE}; refuses types other than FLOAT32 and FLOAT16. */
        public Builder dataType(DataType type) {
            KvLayout.checkDataType(type);
            return set(DTYPE, type == DataType.FLOAT16 ? "float16" : "float32");
        }

        /** Sets {@link #LOCATION}: {@code cpu:0} or {@code cuda:N}. */
        public Builder location(MemoryLocation where) {
            return set(LOCATION, where.toString());
        }

        /** Sets {@link #UNCLAIMED_TIMEOUT}. */
        public Builder unclaimedTimeout(Duration d) {
            return set(UNCLAIMED_TIMEOUT, seconds(d));
        }

        /** Sets {@link #WAIT_TIMEOUT}. */
        public Builder waitTimeout(Duration d) {
            return set(WAIT_TIMEOUT, seconds(d));
        }

        /** Sets {@link #QUARANTINE}. */
        public Builder quarantine(Duration d) {
            return set(QUARANTINE, seconds(d));
        }

        /** Sets {@link #ALLOC_WAIT}. */
        public Builder allocWait(Duration d) {
            return set(ALLOC_WAIT, seconds(d));
        }

        /** Replaces the process environment (tests; embedding). */
        public Builder environment(Map<String, String> env) {
            settings.environment(env);
            return this;
        }

        private static String seconds(Duration d) {
            return Double.toString(d.toNanos() / 1e9);
        }

        /** Reads every setting once; a malformed value fails here with a message naming its key. */
        public KvConnectorConfig build() {
            return new KvConnectorConfig(settings.build());
        }
    }
}
