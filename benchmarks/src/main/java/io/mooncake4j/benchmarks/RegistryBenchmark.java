package io.mooncake4j.benchmarks;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.internal.InstalledTransports;
import io.mooncake4j.internal.MemoryRegistry;
import io.mooncake4j.spi.PinnedRegion;
import java.util.ArrayList;
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
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The memory registry's pin and unpin: every request pins its local range at submit and unpins it at
 * completion, and a target pins each range it serves. Lookup is a binary search over a sorted
 * copy-on-write array; the pin is an atomic counter per region. {@code contended} runs two threads on
 * one region, as a target's serving threads and local submitters do.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1)
public class RegistryBenchmark {
    private static final int LOOKUPS = 4096;

    @Param({"1", "64", "1024"})
    public int regions;

    private final MemoryRegistry registry = new MemoryRegistry();
    private final long[] addresses = new long[LOOKUPS];

    @Setup(Level.Trial)
    public void setUp() {
        List<MemoryRegion> list = new ArrayList<>();
        long base = 0x7f00_0000_0000L;
        long len = 64L << 20;
        for (int i = 0; i < regions; i++) {
            list.add(new MemoryRegion(base + i * (len + 4096), len, MemoryLocation.CPU));
        }
        registry.register(list, InstalledTransports.of());
        Random r = new Random(7);
        for (int i = 0; i < LOOKUPS; i++) {
            addresses[i] = list.get(r.nextInt(regions)).address() + ((long) r.nextInt(1 << 12) << 12);
        }
    }

    /** Per-thread cursor over the lookup addresses. */
    @State(Scope.Thread)
    public static class Cursor {
        int next;
    }

    /** Pin a 4 KiB range, then unpin it: one thread. */
    @Benchmark
    public PinnedRegion pinUnpin(Cursor c) {
        return pinUnpin0(c);
    }

    /** The same on two threads at once (the regions' counters are shared). */
    @Benchmark
    @Threads(2)
    public PinnedRegion pinUnpinContended(Cursor c) {
        return pinUnpin0(c);
    }

    private PinnedRegion pinUnpin0(Cursor c) {
        int i = c.next;
        c.next = (i + 1) & (LOOKUPS - 1);
        PinnedRegion p = registry.pin(addresses[i], 4096);
        p.unpin();
        return p;
    }
}
