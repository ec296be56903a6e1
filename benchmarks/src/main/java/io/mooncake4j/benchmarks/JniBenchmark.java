package io.mooncake4j.benchmarks;

import io.mooncake4j.nativeio.NativeMemory;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import sun.misc.Unsafe;

/**
 * The cost of crossing into C: {@code NativeMemory.copy} of 8 bytes (a JNI call to memmove) against
 * the same 8 bytes moved in Java (a direct buffer's getLong/putLong, and {@code Unsafe.copyMemory},
 * which the JIT turns into a few instructions). The difference is the per-call price the engine pays
 * wherever it copies a small amount through JNI.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class JniBenchmark {
    private static final Unsafe UNSAFE = unsafe();

    private long mem;
    private long src;
    private long dst;
    private ByteBuffer view;

    @Setup(Level.Trial)
    public void setUp() {
        mem = NativeMemory.map(4096);
        src = mem;
        dst = mem + 64;
        view = NativeMemory.wrap(mem, 4096);
        view.putLong(0, 0x0123456789abcdefL);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        NativeMemory.unmap(mem, 4096);
    }

    /** An empty benchmark: the harness's own cost per call. */
    @Benchmark
    public void baseline() {}

    /** 8 bytes through JNI memmove. */
    @Benchmark
    public void jniCopy8() {
        NativeMemory.copy(dst, src, 8);
    }

    /** 8 bytes through Unsafe.copyMemory (an intrinsic: no call into C for small sizes). */
    @Benchmark
    public void unsafeCopy8() {
        UNSAFE.copyMemory(src, dst, 8);
    }

    /** 8 bytes through a direct buffer view (bounds-checked loads and stores). */
    @Benchmark
    public void bufferCopy8() {
        view.putLong(64, view.getLong(0));
    }

    static Unsafe unsafe() {
        try {
            Field f = Unsafe.class.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            return (Unsafe) f.get(null);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
}
