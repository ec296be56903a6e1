package io.mooncake4j.benchmarks;

import io.mooncake4j.nativeio.NativeMemory;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import sun.misc.Unsafe;

/**
 * Memory-copy bandwidth from Java, the ceiling of same-process transfers: blocks of {@code block}
 * bytes copied one after another through two {@code region}-byte areas (256 MiB by default, far
 * beyond the caches, as a bench's buffers are), through JNI memmove and through Unsafe.copyMemory.
 * Bytes per second = ops/s x block. scripts/bench-baselines.sh measures the same with a C loop.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class CopyBandwidthBenchmark {
    private static final Unsafe UNSAFE = JniBenchmark.unsafe();

    @Param({"4096", "65536", "1048576"})
    public long block;

    @Param({"268435456"})
    public long region;

    private long src;
    private long dst;
    private long off;

    @Setup(Level.Trial)
    public void setUp() {
        src = NativeMemory.map(region);
        dst = NativeMemory.map(region);
        NativeMemory.fill(src, region, 0x5a);
        NativeMemory.fill(dst, region, 0);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        NativeMemory.unmap(src, region);
        NativeMemory.unmap(dst, region);
    }

    private long next() {
        long o = off;
        off = o + block >= region ? 0 : o + block;
        return o;
    }

    /** One block through NativeMemory.copy (JNI memmove). */
    @Benchmark
    public void jni() {
        long o = next();
        NativeMemory.copy(dst + o, src + o, block);
    }

    /** One block through Unsafe.copyMemory. */
    @Benchmark
    public void unsafe() {
        long o = next();
        UNSAFE.copyMemory(src + o, dst + o, block);
    }
}
