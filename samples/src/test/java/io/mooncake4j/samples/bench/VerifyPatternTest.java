package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class VerifyPatternTest {
    private static ByteBuffer filled(VerifyPattern p, long block, int size) {
        ByteBuffer b = ByteBuffer.allocateDirect(size);
        p.fill(b, block);
        return b;
    }

    @Test
    void shouldCheckCleanWhatItFilled() {
        VerifyPattern p = new VerifyPattern(42);
        for (int size : new int[] {1, 7, 8, 9, 4096, 65536 + 3}) {
            assertEquals(-1, p.firstMismatch(filled(p, 5, size), 5), "size " + size);
        }
    }

    @Test
    void shouldDifferPerBlock() {
        VerifyPattern p = new VerifyPattern(42);
        ByteBuffer b0 = filled(p, 0, 4096);
        ByteBuffer b1 = filled(p, 1, 4096);
        assertNotEquals(b0, b1);
        assertEquals(0, p.firstMismatch(b1, 0), "block 1's bytes must not pass as block 0's");
        // Blocks with the same index in different remote buffers differ too (see VerifyPhase.Block).
        ByteBuffer other = filled(p, (1L << 40) | 0, 4096);
        assertNotEquals(b0, other);
    }

    @Test
    void shouldDifferPerRun() {
        ByteBuffer a = filled(new VerifyPattern(1), 7, 4096);
        ByteBuffer b = filled(new VerifyPattern(2), 7, 4096);
        assertNotEquals(a, b);
        assertTrue(new VerifyPattern(2).firstMismatch(a, 7) >= 0, "a stale block from an earlier run must fail");
    }

    @Test
    void shouldNotRepeatWithinABlock() {
        VerifyPattern p = new VerifyPattern(3);
        ByteBuffer b = filled(p, 0, 1 << 16);
        long first = b.getLong(0);
        for (int i = 8; i < b.capacity(); i += 8) {
            assertNotEquals(first, b.getLong(i), "word " + (i / 8));
        }
    }

    @Test
    void shouldFindADeliberatelyCorruptedByte() {
        VerifyPattern p = new VerifyPattern(0x5eedL);
        for (int offset : new int[] {0, 1, 7, 8, 4093, 65535, 65536 + 2}) {
            ByteBuffer b = filled(p, 9, 65536 + 3);
            b.put(offset, (byte) (b.get(offset) ^ 0x10));
            assertEquals(offset, p.firstMismatch(b, 9), "corrupted at " + offset);
        }
    }

    @Test
    void shouldReportTheFirstOfSeveralCorruptedBytes() {
        VerifyPattern p = new VerifyPattern(11);
        ByteBuffer b = filled(p, 2, 4096);
        b.put(3000, (byte) ~b.get(3000));
        b.put(1234, (byte) ~b.get(1234));
        assertEquals(1234, p.firstMismatch(b, 2));
    }

    @Test
    void shouldFindAZeroedBlockAsAReadThatMovedNothing() {
        VerifyPattern p = new VerifyPattern(12);
        assertTrue(p.firstMismatch(ByteBuffer.allocateDirect(4096), 0) >= 0);
    }

    @Test
    void shouldAgreeBetweenByteAtAndFill() {
        VerifyPattern p = new VerifyPattern(99);
        ByteBuffer b = filled(p, 4, 100);
        for (int o = 0; o < 100; o++) {
            assertEquals(p.byteAt(4, o), b.get(o), "offset " + o);
        }
    }
}
