package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.samples.cli.CommandFailure;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class BlockLayoutTest {
    private static final long LOCAL = 0x1000_0000L;
    private static final long REMOTE = 0x7f00_0000_0000L;

    @Test
    void shouldPlaceRequestsAsMooncakeDoes() {
        // Mooncake: source = addr + block_size * (i * threads + thread_id), same offset remotely.
        BlockLayout l = BlockLayout.of(65536, 128, 12, new long[] {LOCAL}, 1L << 30,
                List.of(new BufferDescriptor("cpu:0", REMOTE, 1L << 30)));
        assertFalse(l.wraps());
        assertEquals(LOCAL + 65536L * (5 * 12 + 3), l.localAddress(3, 5));
        assertEquals(REMOTE + 65536L * (5 * 12 + 3), l.remoteAddress(3, 5));
        Set<Long> blocks = new HashSet<>();
        for (int t = 0; t < 12; t++) {
            for (int i = 0; i < 128; i++) {
                assertTrue(blocks.add(l.block(t, i)), "threads never share a block");
            }
        }
        assertNull(l.wrapNote());
    }

    @Test
    void shouldWrapAroundSmallBuffersInsteadOfOverrunning() {
        BlockLayout l = BlockLayout.of(65536, 128, 12, new long[] {LOCAL}, 4 << 20,
                List.of(new BufferDescriptor("cpu:0", REMOTE, 1L << 30)));
        assertEquals(64, l.blocks());
        assertTrue(l.wraps());
        assertNotNull(l.wrapNote());
        for (int t = 0; t < 12; t++) {
            for (int i = 0; i < 128; i++) {
                assertTrue(l.localAddress(t, i) + 65536 <= LOCAL + (4 << 20));
                assertTrue(l.remoteAddress(t, i) + 65536 <= REMOTE + (4 << 20));
            }
        }
    }

    @Test
    void shouldSpreadThreadsOverTheTargetsBuffers() {
        long other = REMOTE + (8L << 30);
        BlockLayout l = BlockLayout.of(4096, 4, 4, new long[] {LOCAL}, 1 << 20,
                List.of(new BufferDescriptor("cpu:0", REMOTE, 1 << 20), new BufferDescriptor("cpu:1", other, 1 << 20)));
        assertEquals(2, l.remoteBuffers());
        assertEquals(REMOTE + 4096L * 4, l.remoteAddress(0, 1));
        assertEquals(other + 4096L * 5, l.remoteAddress(1, 1));
    }

    @Test
    void shouldFailClearlyWhenABlockDoesNotFit() {
        CommandFailure e = assertThrows(CommandFailure.class, () -> BlockLayout.of(1 << 20, 1, 1, new long[] {LOCAL}, 1 << 30,
                List.of(new BufferDescriptor("cpu:0", REMOTE, 4096))));
        assertTrue(e.getMessage().contains("--block_size"), e.getMessage());
        assertThrows(CommandFailure.class, () -> BlockLayout.of(4096, 1, 1, new long[] {LOCAL}, 1 << 20, List.of()));
    }

    @Test
    void shouldVerifyEachDistinctBlockOnce() {
        BlockLayout l = BlockLayout.of(4096, 8, 4, new long[] {LOCAL}, 16 * 4096,
                List.of(new BufferDescriptor("cpu:0", REMOTE, 1 << 20)));
        List<VerifyPhase.Block> blocks = VerifyPhase.blocks(l, Long.MAX_VALUE);
        assertEquals(16, blocks.size());
        assertEquals(3, VerifyPhase.blocks(l, 3).size());
        Set<Long> ids = new HashSet<>();
        blocks.forEach(b -> assertTrue(ids.add(b.patternId())));
    }

    @Test
    void shouldGiveEachThreadTheLocalBufferOfItsGpuWhenBuffersAreSpreadOverGpus() {
        long other = 0x2000_0000L;
        BlockLayout l = BlockLayout.of(4096, 4, 3, new long[] {LOCAL, other}, 1 << 20,
                List.of(new BufferDescriptor("cuda:0", 0x9000_0000L, 1 << 20)));
        assertEquals(LOCAL + 4096L * (2 * 3), l.localAddress(0, 2));
        assertEquals(other + 4096L * (2 * 3 + 1), l.localAddress(1, 2));
        assertEquals(LOCAL + 4096L * (2 * 3 + 2), l.localAddress(2, 2));
        assertEquals(0x9000_0000L + 4096L * (2 * 3 + 1), l.remoteAddress(1, 2));
    }
}
