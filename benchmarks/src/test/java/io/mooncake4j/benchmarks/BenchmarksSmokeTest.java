package io.mooncake4j.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.HostMemory;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * The benchmarks still run (a few milliseconds each, in this JVM: figures mean nothing here), and
 * what they measure still gives the right answers (the descriptor lookup, batch reuse).
 */
class BenchmarksSmokeTest {
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void shouldRunEveryKindOfBenchmarkOnce() throws Exception {
        Options opt = new OptionsBuilder()
                .include(DescriptorLookupBenchmark.class.getName() + ".lookup")
                .include(JniBenchmark.class.getName() + ".jniCopy8")
                .include(RegistryBenchmark.class.getName() + ".pinUnpin$")
                .include(SubmitBenchmark.class.getName() + ".batch016")
                .param("buffers", "64")
                .param("regions", "64")
                .param("target", "local", "tcp")
                .param("reuse", "true")
                .forks(0)
                .warmupIterations(0)
                .measurementIterations(1)
                .measurementTime(TimeValue.milliseconds(50))
                .shouldFailOnError(true)
                .verbosity(org.openjdk.jmh.runner.options.VerboseMode.SILENT)
                .build();
        Collection<RunResult> results = new Runner(opt).run();
        assertEquals(5, results.size(), "one result per benchmark and parameter set");
        for (RunResult r : results) {
            double score = r.getPrimaryResult().getScore();
            assertTrue(score > 0 && Double.isFinite(score), r.getParams().getBenchmark() + ": " + score);
        }
    }

    @Test
    void shouldFindTheSameBufferAsALinearScan() {
        Random rnd = new Random(11);
        for (int n : new int[] {1, 2, 3, 64, 1024}) {
            List<BufferDescriptor> list = new ArrayList<>();
            long base = 0x7f00_0000_0000L;
            for (int i = 0; i < n; i++) {
                long len = 4096L * (1 + rnd.nextInt(64));
                list.add(new BufferDescriptor("cpu:0", base, len));
                base += len + 4096L * rnd.nextInt(3); // adjacent or with a gap
            }
            Collections.shuffle(list, rnd);
            SegmentDescriptor d = new SegmentDescriptor("x:1", "tcp", list, null);
            for (int k = 0; k < 20_000; k++) {
                BufferDescriptor b = list.get(rnd.nextInt(n));
                long addr = b.address() - 8192 + rnd.nextInt((int) b.length() + 16384);
                long len = 1 + rnd.nextInt(3 * 4096);
                assertSame(linear(list, addr, len), d.bufferContaining(addr, len), addr + " +" + len);
            }
        }
    }

    @Test
    void shouldHandleEdgesOfTheAddressSpaceAndOverlaps() {
        BufferDescriptor high = new BufferDescriptor("cpu:0", 0xffff_ffff_ffff_0000L, 0x1000);
        BufferDescriptor low = new BufferDescriptor("cpu:0", 0x1000, 0x1000);
        SegmentDescriptor d = new SegmentDescriptor("x:1", "tcp", List.of(high, low), null);
        assertSame(high, d.bufferContaining(0xffff_ffff_ffff_0000L, 0x1000)); // "negative" as a long
        assertSame(low, d.bufferContaining(0x1fff, 1));
        assertNull(d.bufferContaining(0x1fff, 2));
        assertNull(d.bufferContaining(0xffff_ffff_ffff_ff00L, 0x200)); // past the buffer's end
        assertNull(d.bufferContaining(0xffff_ffff_ffff_fff0L, 0x20)); // wraps around
        assertNull(d.bufferContaining(0x1000, 0));
        assertNull(d.bufferContaining(0x800, 16));
        // overlapping buffers (a foreign descriptor): still the first one that contains the range
        BufferDescriptor a = new BufferDescriptor("cpu:0", 0x10000, 0x4000);
        BufferDescriptor b = new BufferDescriptor("cpu:0", 0x11000, 0x1000);
        SegmentDescriptor o = new SegmentDescriptor("x:1", "tcp", List.of(b, a), null);
        assertSame(b, o.bufferContaining(0x11000, 0x100));
        assertSame(a, o.bufferContaining(0x10000, 0x4000));
        assertNotNull(o.bufferContaining(0x13000, 0x1000));
        assertFalse(o.buffers().isEmpty());
    }

    /** SubmitBenchmark's reuse=true measures reset(): it must move the right bytes, round after round. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldMoveTheRightBytesThroughAReusedBatch() throws Exception {
        try (TransferEngine target = TransferEngine.create(SubmitBenchmark.config());
                TransferEngine engine = TransferEngine.create(SubmitBenchmark.config());
                HostMemory src = engine.allocate(1 << 20);
                HostMemory back = engine.allocate(1 << 20);
                HostMemory dst = target.allocate(1 << 20)) {
            Segment peer = engine.openSegment(target.localSegmentName());
            Random rnd = new Random(5);
            TransferBatch b = engine.newBatch(32);
            for (int round = 0; round < 50; round++) {
                int n = 1 + rnd.nextInt(32);
                int block = (1 << 20) / 32;
                byte seed = (byte) round;
                java.nio.ByteBuffer fill = src.buffer(0, 1 << 20);
                for (int i = 0; i < (1 << 20); i++) {
                    fill.put(i, (byte) (seed + i * 31));
                }
                b.reset();
                assertEquals(0, b.size());
                for (int i = 0; i < n; i++) {
                    b.write(peer, src.address() + (long) i * block, dst.address() + (long) i * block, block);
                }
                assertTrue(b.submit().join().isAllCompleted(), "round " + round + ": " + b.failureReason(0));
                b.reset();
                for (int i = 0; i < n; i++) {
                    b.read(peer, back.address() + (long) i * block, dst.address() + (long) i * block, block);
                }
                assertEquals(TransferStatus.WAITING, b.status(0));
                assertTrue(b.submit().join().isAllCompleted(), "round " + round + ": " + b.failureReason(0));
                int len = n * block;
                assertEquals(src.buffer(0, len), back.buffer(0, len), "round " + round);
            }
        }
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldRefuseResetWhileRequestsAreInFlight() {
        try (TransferEngine target = TransferEngine.create(SubmitBenchmark.config());
                TransferEngine engine = TransferEngine.create(SubmitBenchmark.config());
                HostMemory src = engine.allocate(256L << 20);
                HostMemory dst = target.allocate(256L << 20)) {
            Segment peer = engine.openSegment(target.localSegmentName());
            TransferBatch b = engine.newBatch(1).write(peer, src.address(), dst.address(), 256L << 20).submit();
            if (!b.isDone()) { // 256 MiB take tens of milliseconds
                MooncakeException e = assertThrows(MooncakeException.class, b::reset);
                assertTrue(e.getMessage().contains("in flight"), e.getMessage());
            }
            assertTrue(b.join().isAllCompleted());
            b.reset().write(peer, src.address(), dst.address(), 4096);
            assertTrue(b.submit().join().isAllCompleted());
        }
    }

    private static BufferDescriptor linear(List<BufferDescriptor> list, long addr, long len) {
        for (BufferDescriptor b : list) {
            if (b.contains(addr, len)) {
                return b;
            }
        }
        return null;
    }
}
