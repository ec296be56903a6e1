package io.mooncake4j.samples.fault;

import io.mooncake4j.HostMemory;
import io.mooncake4j.samples.bench.VerifyPattern;
import java.nio.ByteBuffer;

/**
 * A buffer laid out as {@code [guard][window][guard]}: transfers may touch only the window; the two
 * guard zones hold canary bytes that must survive every fault unchanged ("nothing outside the
 * target ranges changes").
 */
final class Guards {
    private static final VerifyPattern CANARY = new VerifyPattern(0x6A09E667F3BCC908L);
    private final HostMemory memory;
    private final int guard;
    private final int window;

    private Guards(HostMemory memory, int guard, int window) {
        this.memory = memory;
        this.guard = guard;
        this.window = window;
    }

    /** The size of a buffer with a window of {@code window} bytes and guards of {@code guard} bytes. */
    static long totalLength(int guard, int window) {
        return 2L * guard + window;
    }

    /** Lays the guards over {@code memory} (of {@link #totalLength} bytes) and writes the canaries. */
    static Guards arm(HostMemory memory, int guard, int window) {
        if (memory.length() != totalLength(guard, window)) {
            throw new IllegalArgumentException("buffer of " + memory.length() + " bytes, expected "
                    + totalLength(guard, window));
        }
        Guards g = new Guards(memory, guard, window);
        CANARY.fill(g.before(), 0);
        CANARY.fill(g.after(), 1);
        return g;
    }

    /** The window's first byte. */
    long windowAddress() {
        return memory.address() + guard;
    }

    int windowLength() {
        return window;
    }

    /** The window's bytes {@code [offset, offset + length)}. */
    ByteBuffer window(int offset, int length) {
        return memory.buffer(guard + offset, length);
    }

    /** "intact", or where the first changed canary byte is. */
    String check() {
        long b = CANARY.firstMismatch(before(), 0);
        if (b >= 0) {
            return "changed " + (guard - b) + " bytes before the window";
        }
        long a = CANARY.firstMismatch(after(), 1);
        return a >= 0 ? "changed " + a + " bytes after the window" : "intact";
    }

    private ByteBuffer before() {
        return memory.buffer(0, guard);
    }

    private ByteBuffer after() {
        return memory.buffer(guard + (long) window, guard);
    }
}
