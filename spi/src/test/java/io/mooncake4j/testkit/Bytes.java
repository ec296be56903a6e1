package io.mooncake4j.testkit;

import io.mooncake4j.nativeio.NativeMemory;
import java.util.SplittableRandom;

/** Test bytes: reproducible random data, and what lies in native memory. */
public final class Bytes {
    private Bytes() {}

    /** {@code n} random bytes, the same for the same {@code seed}. */
    public static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new SplittableRandom(seed).nextBytes(b);
        return b;
    }

    /** A copy of the {@code n} bytes at {@code address}. */
    public static byte[] at(long address, int n) {
        byte[] b = new byte[n];
        NativeMemory.wrap(address, n).get(b);
        return b;
    }
}
