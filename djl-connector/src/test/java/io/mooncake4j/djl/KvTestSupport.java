package io.mooncake4j.djl;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.KvPart;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;

/** Shared test helpers: engines, an offline PyTorch manager, and block fill/compare patterns. */
public final class KvTestSupport {
    private KvTestSupport() {}

    /** A PyTorch base manager, offline, one thread (as the llama tests do). */
    public static NDManager newManager() {
        if (System.getenv("DJL_OFFLINE") == null) {
            setIfAbsent("ai.djl.offline", "true");
        }
        setIfAbsent("ai.djl.pytorch.num_threads", "1");
        setIfAbsent("ai.djl.pytorch.num_interop_threads", "1");
        return Engine.getEngine("PyTorch").newBaseManager();
    }

    private static void setIfAbsent(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    /** An engine on 127.0.0.1 with the given protocol and transfer timeout. */
    public static TransferEngine engine(String protocol, Duration transferTimeout) {
        return TransferEngine.create(EngineConfig.builder()
                .protocol(protocol)
                .localHostname("127.0.0.1")
                .metadataServer("P2PHANDSHAKE")
                .transferTimeout(transferTimeout)
                .build());
    }

    /** The int written at element {@code e} of position {@code pos} of a (layer, part) for request {@code seed}. */
    public static int pattern(int seed, int layer, KvPart part, int pos, int e) {
        int h = seed * 0x9E3779B1 + layer * 0x85EBCA6B + part.index() * 0xC2B2AE35 + pos * 0x27D4EB2F + e;
        return h ^ (h >>> 15);
    }

    /**
     * Fills positions {@code [0, blocks.length * blockTokens)} of a block table with the pattern,
     * through {@link PagedKvPool#write} (so host and device pools alike).
     */
    public static void fill(PagedKvPool pool, int[] blocks, int seed) {
        KvLayout l = pool.layout();
        int intsPerToken = l.tokenBytes() / 4;
        ByteBuffer b = ByteBuffer.allocate(l.blockBytes()).order(ByteOrder.LITTLE_ENDIAN);
        for (int layer = 0; layer < l.layers(); layer++) {
            for (KvPart part : KvPart.values()) {
                for (int i = 0; i < blocks.length; i++) {
                    b.clear();
                    for (int t = 0; t < l.blockTokens(); t++) {
                        int pos = i * l.blockTokens() + t;
                        for (int e = 0; e < intsPerToken; e++) {
                            b.putInt(pattern(seed, layer, part, pos, e));
                        }
                    }
                    pool.write(layer, part, (long) blocks[i] * l.blockBytes(), b.flip());
                }
            }
        }
    }

    /** Zeroes the blocks. */
    public static void clear(PagedKvPool pool, int[] blocks) {
        KvLayout l = pool.layout();
        ByteBuffer zeros = ByteBuffer.allocate(l.blockBytes());
        for (int layer = 0; layer < l.layers(); layer++) {
            for (KvPart part : KvPart.values()) {
                for (int b : blocks) {
                    pool.write(layer, part, (long) b * l.blockBytes(), zeros.clear());
                }
            }
        }
    }

    /**
     * Returns null when blocks {@code [fromBlock, toBlock)} of the table hold the pattern of {@code
     * seed}, else a description of the first difference.
     */
    public static String check(PagedKvPool pool, int[] blocks, int fromBlock, int toBlock, int seed) {
        KvLayout l = pool.layout();
        int intsPerToken = l.tokenBytes() / 4;
        ByteBuffer b = ByteBuffer.allocate(l.blockBytes()).order(ByteOrder.LITTLE_ENDIAN);
        for (int layer = 0; layer < l.layers(); layer++) {
            for (KvPart part : KvPart.values()) {
                for (int i = fromBlock; i < toBlock; i++) {
                    pool.read(layer, part, (long) blocks[i] * l.blockBytes(), b.clear());
                    b.flip();
                    for (int t = 0; t < l.blockTokens(); t++) {
                        int pos = i * l.blockTokens() + t;
                        for (int e = 0; e < intsPerToken; e++) {
                            int want = pattern(seed, layer, part, pos, e);
                            int got = b.getInt();
                            if (got != want) {
                                return "layer " + layer + " " + part + " position " + pos + " element " + e + ": "
                                        + got + " != " + want + " (block " + blocks[i] + ")";
                            }
                        }
                    }
                }
            }
        }
        return null;
    }
}
