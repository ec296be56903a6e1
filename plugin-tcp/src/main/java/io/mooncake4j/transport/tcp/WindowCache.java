package io.mooncake4j.transport.tcp;

import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;

/**
 * Direct ByteBuffer views over native memory, cached per 1 GiB window of the address space so that
 * moving a range needs no new object. A direct buffer cannot exceed 2 GiB, so a range that crosses a
 * window boundary is moved in pieces. Views of one window come in numbered copies: a gathering write
 * that sends several ranges of one window uses a distinct copy for each entry.
 *
 * <p>A view only describes addresses; it is used exclusively for ranges the caller has validated
 * (pinned by the engine or by {@code LocalMemory.pin}). Confined to one thread.
 */
final class WindowCache {
    static final int WINDOW_SHIFT = 30;
    static final long WINDOW = 1L << WINDOW_SHIFT;
    private static final int SLOTS = 256; // power of two; cleared when half full

    private final long[] keys = new long[SLOTS]; // window index + 1; 0 = empty
    private final ByteBuffer[][] views = new ByteBuffer[SLOTS][];
    private int used;

    /**
     * A view whose position is {@code address} and whose limit is {@code address + length} or the end
     * of the window, whichever comes first; {@code copy} picks one of the window's copies.
     */
    ByteBuffer view(long address, long length, int copy) {
        long window = address >>> WINDOW_SHIFT;
        ByteBuffer[] copies = copies(window);
        ByteBuffer v = copies.length > copy ? copies[copy] : null;
        if (v == null) {
            v = newCopy(window, copies, copy);
        }
        long base = viewBase(window);
        long end = Math.min((window + 1) << WINDOW_SHIFT, address + length);
        v.limit((int) (end - base)).position((int) (address - base));
        return v;
    }

    private ByteBuffer[] copies(long window) {
        int idx = (int) (mix(window) & (SLOTS - 1));
        for (int probe = 0; probe < SLOTS; probe++) {
            int s = (idx + probe) & (SLOTS - 1);
            if (keys[s] == window + 1) {
                return views[s];
            }
            if (keys[s] == 0) {
                if (used >= SLOTS / 2) {
                    clear();
                    return copies(window);
                }
                keys[s] = window + 1;
                views[s] = new ByteBuffer[1];
                used++;
                return views[s];
            }
        }
        clear();
        return copies(window);
    }

    private ByteBuffer newCopy(long window, ByteBuffer[] copies, int copy) {
        ByteBuffer[] arr = copies;
        if (arr.length <= copy) {
            arr = java.util.Arrays.copyOf(copies, Math.max(copy + 1, copies.length * 2));
            replace(window, arr);
        }
        ByteBuffer v;
        if (arr[0] == null) {
            long base = viewBase(window);
            long capacity = ((window + 1) << WINDOW_SHIFT) - base;
            arr[0] = NativeMemory.wrap(base, (int) capacity);
        }
        v = copy == 0 ? arr[0] : arr[0].duplicate();
        arr[copy] = v;
        return v;
    }

    private void replace(long window, ByteBuffer[] arr) {
        for (int s = 0; s < SLOTS; s++) {
            if (keys[s] == window + 1) {
                views[s] = arr;
                return;
            }
        }
    }

    private void clear() {
        java.util.Arrays.fill(keys, 0);
        java.util.Arrays.fill(views, null);
        used = 0;
    }

    /** Address 0 cannot be wrapped: the first window starts one byte in. */
    private static long viewBase(long window) {
        long base = window << WINDOW_SHIFT;
        return base == 0 ? 1 : base;
    }

    private static long mix(long x) {
        x *= 0x9E3779B97F4A7C15L;
        return x ^ (x >>> 29);
    }
}
