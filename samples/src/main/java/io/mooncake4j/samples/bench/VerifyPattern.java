package io.mooncake4j.samples.bench;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The bytes {@code --verify} writes: a pseudo-random function of (run seed, block id, byte offset),
 * so every block of every run differs and a block that landed in the wrong place, a stale block
 * from an earlier run, a short transfer or a flipped byte all show up. Generated on the fly (a
 * SplitMix64 mix per 8 bytes, about 1 ns each): nothing to keep in memory, and the target needs no
 * copy of it.
 */
public final class VerifyPattern {
    private static final long BLOCK_STEP = 0xD1B54A32D192ED03L;
    private static final long WORD_STEP = 0x9E3779B97F4A7C15L;

    private final long seed;

    public VerifyPattern(long seed) {
        this.seed = seed;
    }

    /** The run seed. */
    public long seed() {
        return seed;
    }

    /** The 8 bytes at {@code [8 * word, 8 * word + 8)} of block {@code block}, little endian. */
    public long word(long block, long word) {
        long z = seed + block * BLOCK_STEP + word * WORD_STEP;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** The byte at {@code offset} of block {@code block}. */
    public byte byteAt(long block, long offset) {
        return (byte) (word(block, offset >>> 3) >>> ((offset & 7) * 8));
    }

    /** Writes block {@code block}'s pattern over {@code dst}'s whole capacity. */
    public void fill(ByteBuffer dst, long block) {
        ByteBuffer b = dst.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int len = b.capacity();
        int words = len >>> 3;
        for (int w = 0; w < words; w++) {
            b.putLong(w << 3, word(block, w));
        }
        for (int o = words << 3; o < len; o++) {
            b.put(o, byteAt(block, o));
        }
    }

    /**
     * The offset of the first byte of {@code actual} (its whole capacity) that is not block {@code
     * block}'s pattern, or -1 when all match.
     */
    public long firstMismatch(ByteBuffer actual, long block) {
        ByteBuffer b = actual.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int len = b.capacity();
        int words = len >>> 3;
        for (int w = 0; w < words; w++) {
            long expected = word(block, w);
            long got = b.getLong(w << 3);
            if (got != expected) {
                return ((long) w << 3) + (Long.numberOfTrailingZeros(got ^ expected) >>> 3);
            }
        }
        for (int o = words << 3; o < len; o++) {
            if (b.get(o) != byteAt(block, o)) {
                return o;
            }
        }
        return -1;
    }
}
