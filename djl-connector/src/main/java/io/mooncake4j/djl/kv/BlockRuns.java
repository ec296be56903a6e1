package io.mooncake4j.djl.kv;

import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.util.ArrayList;
import java.util.List;

/** Coalescing of block lists into {@link BlockRun}s and of block tables into memory runs. */
public final class BlockRuns {
    private BlockRuns() {}

    /**
     * Pairs {@code src[i]} with {@code dst[i]} and merges neighbours that are consecutive on BOTH
     * sides ({@code src[i] + 1 == src[i + 1]} and {@code dst[i] + 1 == dst[i + 1]}) into runs.
     *
     * @param src local block ids
     * @param dst peer block ids, as many as {@code src}
     * @return the runs, in order; empty for empty lists
     */
    public static List<BlockRun> coalesce(int[] src, int[] dst) {
        if (src.length != dst.length) {
            throw new KvException(
                    KvError.INVALID_PARAMS,
                    "block lists differ in length: " + src.length + " local vs " + dst.length + " remote");
        }
        List<BlockRun> runs = new ArrayList<>();
        int i = 0;
        while (i < src.length) {
            int j = i + 1;
            while (j < src.length && src[j] == src[j - 1] + 1 && dst[j] == dst[j - 1] + 1) {
                j++;
            }
            runs.add(new BlockRun(src[i], dst[i], j - i));
            i = j;
        }
        return runs;
    }

    /**
     * Splits one block list into runs of consecutive ids; each run's {@code src} and {@code dst} are
     * the first id and the index of that block in {@code blocks}.
     *
     * @param blocks block ids
     * @return runs where {@code src} is the first id and {@code dst} its index in the list
     */
    public static List<BlockRun> memoryRuns(int[] blocks) {
        List<BlockRun> runs = new ArrayList<>();
        int i = 0;
        while (i < blocks.length) {
            int j = i + 1;
            while (j < blocks.length && blocks[j] == blocks[j - 1] + 1) {
                j++;
            }
            runs.add(new BlockRun(blocks[i], i, j - i));
            i = j;
        }
        return runs;
    }
}
