package io.mooncake4j.gpu.cuda;

import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.KvPart;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.nio.ByteBuffer;

/**
 * Bytes for the blocks of a request's table, by (seed, layer, part, table index, byte), written and
 * checked through {@link PagedKvPool#write}/{@link PagedKvPool#read}, so a block that lands in the
 * wrong place or layer shows.
 */
final class KvBlockPattern {
    private KvBlockPattern() {}

    private static byte at(int seed, int layer, KvPart part, int index, int k) {
        return (byte) (seed * 31 + layer * 7 + part.index() * 3 + index * 131 + k * 13 + (k >>> 8));
    }

    private static ByteBuffer block(KvLayout l, int seed, int layer, KvPart part, int index) {
        byte[] b = new byte[l.blockBytes()];
        for (int k = 0; k < b.length; k++) {
            b[k] = at(seed, layer, part, index, k);
        }
        return ByteBuffer.wrap(b);
    }

    /** Writes the pattern of {@code seed} into every block of the table. */
    static void fill(PagedKvPool pool, int[] blocks, int seed) {
        KvLayout l = pool.layout();
        for (int layer = 0; layer < l.layers(); layer++) {
            for (KvPart part : KvPart.values()) {
                for (int i = 0; i < blocks.length; i++) {
                    pool.write(layer, part, (long) blocks[i] * l.blockBytes(), block(l, seed, layer, part, i));
                }
            }
        }
    }

    /** Null when the first {@code count} blocks of the table hold the pattern, else the first difference. */
    static String check(PagedKvPool pool, int[] blocks, int count, int seed) {
        KvLayout l = pool.layout();
        ByteBuffer got = ByteBuffer.allocate(l.blockBytes());
        for (int layer = 0; layer < l.layers(); layer++) {
            for (KvPart part : KvPart.values()) {
                for (int i = 0; i < count; i++) {
                    pool.read(layer, part, (long) blocks[i] * l.blockBytes(), got.clear());
                    int at = got.flip().mismatch(block(l, seed, layer, part, i));
                    if (at >= 0) {
                        return "layer " + layer + " " + part + " block " + i + " of the table (id " + blocks[i]
                                + ") differs at byte " + at;
                    }
                }
            }
        }
        return null;
    }
}
