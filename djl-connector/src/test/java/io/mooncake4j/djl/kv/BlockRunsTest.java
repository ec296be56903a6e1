package io.mooncake4j.djl.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.mooncake4j.djl.KvException;
import java.util.List;
import org.junit.jupiter.api.Test;

class BlockRunsTest {

    @Test
    void shouldMergeRunsContiguousOnBothSides() {
        assertEquals(List.of(new BlockRun(10, 3, 4)),
                BlockRuns.coalesce(new int[] {10, 11, 12, 13}, new int[] {3, 4, 5, 6}));
    }

    @Test
    void shouldSplitWhereEitherSideBreaks() {
        // local contiguous, remote breaks after 2
        assertEquals(List.of(new BlockRun(0, 5, 2), new BlockRun(2, 9, 2)),
                BlockRuns.coalesce(new int[] {0, 1, 2, 3}, new int[] {5, 6, 9, 10}));
        // remote contiguous, local breaks after 1
        assertEquals(List.of(new BlockRun(0, 5, 1), new BlockRun(7, 6, 3)),
                BlockRuns.coalesce(new int[] {0, 7, 8, 9}, new int[] {5, 6, 7, 8}));
        // both break: nothing merges
        assertEquals(3, BlockRuns.coalesce(new int[] {4, 2, 0}, new int[] {1, 3, 5}).size());
        // descending on both sides is not contiguous either
        assertEquals(2, BlockRuns.coalesce(new int[] {1, 0}, new int[] {1, 0}).size());
    }

    @Test
    void shouldReturnNoRunsForNoBlocksAndRefuseMismatchedLists() {
        assertEquals(List.of(), BlockRuns.coalesce(new int[0], new int[0]));
        assertThrows(KvException.class, () -> BlockRuns.coalesce(new int[] {1}, new int[0]));
    }

    @Test
    void shouldSplitATableIntoMemoryRuns() {
        assertEquals(List.of(new BlockRun(4, 0, 2), new BlockRun(9, 2, 1), new BlockRun(1, 3, 3)),
                BlockRuns.memoryRuns(new int[] {4, 5, 9, 1, 2, 3}));
    }
}
