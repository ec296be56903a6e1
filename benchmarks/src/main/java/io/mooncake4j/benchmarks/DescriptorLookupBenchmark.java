package io.mooncake4j.benchmarks;

import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
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
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@link SegmentDescriptor#bufferContaining}: the engine's check, on every remote request, that the
 * remote range lies in one buffer of the peer's descriptor. A KV cache registers one buffer per layer
 * tensor, so a peer may show tens to thousands. Buffers are listed in random order (registration
 * order, not address order) and each lookup hits a random one.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1)
public class DescriptorLookupBenchmark {
    private static final int LOOKUPS = 4096; // power of two

    @Param({"1", "64", "1024"})
    public int buffers;

    private SegmentDescriptor descriptor;
    private final long[] addresses = new long[LOOKUPS];
    private int next;

    @Setup(Level.Trial)
    public void setUp() {
        List<BufferDescriptor> list = new ArrayList<>();
        long base = 0x7f00_0000_0000L;
        long len = 64L << 20;
        for (int i = 0; i < buffers; i++) {
            list.add(new BufferDescriptor("cpu:0", base + i * (len + 4096), len));
        }
        Random r = new Random(42);
        Collections.shuffle(list, r);
        descriptor = new SegmentDescriptor("bench:1", "tcp", list, null);
        for (int i = 0; i < LOOKUPS; i++) {
            BufferDescriptor b = list.get(r.nextInt(buffers));
            addresses[i] = b.address() + (r.nextInt((int) (len >> 12) - 1) << 12);
        }
    }

    /** One lookup of a 4 KiB range. */
    @Benchmark
    public BufferDescriptor lookup() {
        int i = next;
        next = (i + 1) & (LOOKUPS - 1);
        return descriptor.bufferContaining(addresses[i], 4096);
    }
}
