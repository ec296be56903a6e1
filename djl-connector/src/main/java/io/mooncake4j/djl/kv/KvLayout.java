package io.mooncake4j.djl.kv;

import ai.djl.ndarray.types.DataType;
import com.google.gson.JsonObject;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.util.Locale;

/**
 * The geometry of a paged KV cache in one registered region: {@code layers x {K, V} x numBlocks x
 * blockTokens x kvHeads x headSize} elements of {@code dataType}, row-major. Block {@code b} of
 * layer {@code L}, part {@code p} starts at byte {@code ((L * 2 + p) * numBlocks + b) *
 * blockBytes()}, so consecutive block ids of one (layer, part) are adjacent in memory and transfers
 * of runs of them coalesce into one request.
 *
 * <p>Two workers may exchange blocks when their layouts are {@linkplain #isCompatible compatible}:
 * everything but {@code numBlocks} agrees.
 *
 * @param layers transformer layers
 * @param kvHeads key/value heads
 * @param headSize elements per head
 * @param blockTokens positions per block
 * @param numBlocks blocks per (layer, part)
 * @param dataType FLOAT32 or FLOAT16
 */
public record KvLayout(
        int layers, int kvHeads, int headSize, int blockTokens, int numBlocks, DataType dataType) {

    /** Validates the geometry and refuses data types a zero-copy DJL view cannot hold. */
    public KvLayout {
        positive("layers", layers);
        positive("kvHeads", kvHeads);
        positive("headSize", headSize);
        positive("blockTokens", blockTokens);
        positive("numBlocks", numBlocks);
        checkDataType(dataType);
        long blockBytes = (long) blockTokens * kvHeads * headSize * dataType.getNumOfBytes();
        if (blockBytes > Integer.MAX_VALUE) {
            throw new KvException(
                    KvError.INVALID_PARAMS,
                    "a block of " + blockBytes + " bytes is larger than 2 GiB: use fewer blockTokens");
        }
        try {
            Math.multiplyExact(Math.multiplyExact(blockBytes, (long) numBlocks), 2L * layers);
        } catch (ArithmeticException e) {
            throw new KvException(KvError.INVALID_PARAMS, "the KV cache size overflows: " + layers
                    + " layers x " + numBlocks + " blocks x " + blockBytes + " bytes");
        }
    }

    /**
     * Refuses data types the connector cannot serve: DJL's PyTorch engine crashes the JVM when it
     * wraps direct buffers of BFLOAT16, INT16 or unsigned types, and the model computes in floats.
     *
     * @param type the data type
     * @throws KvException UNSUPPORTED_DTYPE unless FLOAT32 or FLOAT16
     */
    public static void checkDataType(DataType type) {
        if (type != DataType.FLOAT32 && type != DataType.FLOAT16) {
            throw new KvException(
                    KvError.UNSUPPORTED_DTYPE,
                    "KV cache dtype " + type + " is not supported: use FLOAT32 or FLOAT16 (DJL's"
                            + " PyTorch engine cannot wrap BFLOAT16, INT16 or unsigned direct buffers)");
        }
    }

    /**
     * Parses a data type name ({@code float32}, {@code fp32}, {@code float16}, {@code fp16}, {@code
     * half}), refusing the unsupported ones with a message.
     *
     * @param name the name, any case
     * @return FLOAT32 or FLOAT16
     */
    public static DataType parseDataType(String name) {
        String n = name.trim().toLowerCase(Locale.ROOT);
        switch (n) {
            case "float32":
            case "fp32":
            case "float":
                return DataType.FLOAT32;
            case "float16":
            case "fp16":
            case "half":
                return DataType.FLOAT16;
            default:
                for (DataType t : DataType.values()) {
                    if (t.name().equalsIgnoreCase(n) || t.toString().equalsIgnoreCase(n)) {
                        checkDataType(t);
                    }
                }
                throw new KvException(
                        KvError.UNSUPPORTED_DTYPE, "unknown KV cache dtype '" + name + "': use float32 or float16");
        }
    }

    /** Elements per position of one layer's keys (or values): {@code kvHeads * headSize}. */
    public int kvDim() {
        return kvHeads * headSize;
    }

    /** Bytes of one position of one layer's keys (or values). */
    public int tokenBytes() {
        return kvDim() * dataType.getNumOfBytes();
    }

    /** Bytes of one block of one (layer, part). */
    public int blockBytes() {
        return blockTokens * tokenBytes();
    }

    /** Bytes of one (layer, part): {@code numBlocks * blockBytes()}. */
    public long partBytes() {
        return (long) numBlocks * blockBytes();
    }

    /** Bytes of the whole cache. */
    public long totalBytes() {
        return partBytes() * 2L * layers;
    }

    /** The total number of positions the pool holds per layer: {@code numBlocks * blockTokens}. */
    public long tokenCapacity() {
        return (long) numBlocks * blockTokens;
    }

    /** Blocks needed for {@code tokens} positions (rounded up). */
    public int blocksFor(int tokens) {
        if (tokens < 0) {
            throw new KvException(KvError.INVALID_PARAMS, "token count must not be negative: " + tokens);
        }
        return (tokens + blockTokens - 1) / blockTokens;
    }

    /** The offset of block 0 of a (layer, part) from the start of the cache region. */
    public long partOffset(int layer, KvPart part) {
        if (layer < 0 || layer >= layers) {
            throw new IndexOutOfBoundsException("layer " + layer + " outside [0, " + layers + ")");
        }
        return (layer * 2L + part.index()) * partBytes();
    }

    /** The offset of a block from the start of the cache region. */
    public long blockOffset(int layer, KvPart part, int block) {
        if (block < 0 || block >= numBlocks) {
            throw new IndexOutOfBoundsException("block " + block + " outside [0, " + numBlocks + ")");
        }
        return partOffset(layer, part) + (long) block * blockBytes();
    }

    /** This layout with another pool size. */
    public KvLayout withNumBlocks(int blocks) {
        return new KvLayout(layers, kvHeads, headSize, blockTokens, blocks, dataType);
    }

    /** Whether blocks can move between this layout and {@code other}: all but numBlocks agree. */
    public boolean isCompatible(KvLayout other) {
        return other != null
                && layers == other.layers
                && kvHeads == other.kvHeads
                && headSize == other.headSize
                && blockTokens == other.blockTokens
                && dataType == other.dataType;
    }

    /** The short name of the data type used in JSON: {@code float32} or {@code float16}. */
    public String dataTypeName() {
        return dataType == DataType.FLOAT16 ? "float16" : "float32";
    }

    /** The JSON form: {@code {layers, kv_heads, head_size, block_tokens, num_blocks, dtype, block_bytes}}. */
    public JsonObject toJson() {
        JsonObject o = new JsonObject();
        o.addProperty("layers", layers);
        o.addProperty("kv_heads", kvHeads);
        o.addProperty("head_size", headSize);
        o.addProperty("block_tokens", blockTokens);
        o.addProperty("num_blocks", numBlocks);
        o.addProperty("dtype", dataTypeName());
        o.addProperty("block_bytes", blockBytes());
        return o;
    }

    /** Parses {@link #toJson()}'s form. */
    public static KvLayout fromJson(JsonObject o) {
        try {
            KvLayout l = new KvLayout(
                    o.get("layers").getAsInt(),
                    o.get("kv_heads").getAsInt(),
                    o.get("head_size").getAsInt(),
                    o.get("block_tokens").getAsInt(),
                    o.has("num_blocks") ? o.get("num_blocks").getAsInt() : 1,
                    parseDataType(o.get("dtype").getAsString()));
            if (o.has("block_bytes") && o.get("block_bytes").getAsLong() != l.blockBytes()) {
                throw new KvException(KvError.INVALID_PARAMS, "layout " + o + ": block_bytes disagrees with the geometry");
            }
            return l;
        } catch (KvException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new KvException(KvError.INVALID_PARAMS, "malformed KV layout " + o + ": " + e, e);
        }
    }

    @Override
    public String toString() {
        return "KvLayout[" + layers + " layers x " + kvHeads + " kv heads x " + headSize + " x " + dataTypeName()
                + ", " + blockTokens + " tokens/block, " + numBlocks + " blocks, " + (totalBytes() >> 20) + " MiB]";
    }

    private static void positive(String name, int v) {
        if (v <= 0) {
            throw new KvException(KvError.INVALID_PARAMS, name + " must be positive, got " + v);
        }
    }
}
