package io.mooncake4j.benchmarks;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.Opcode;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What the engine costs per request beyond moving the bytes: build a batch, submit it, wait for its
 * completion, on one thread. Every figure is per request ({@code @OperationsPerInvocation} is the
 * batch size), so {@code -prof gc}'s {@code gc.alloc.rate.norm} is heap bytes per request.
 *
 * <ul>
 *   <li>{@code target=local}: the engine's own segment; the engine copies on the submitting thread,
 *       so this is validation, pinning, memcpy of {@code block} bytes and completion, no thread.
 *   <li>{@code target=tcp}: a second engine in this JVM over loopback TCP (both ends, all their
 *       threads, share this machine's cores): the hand-off to a lane's sender, the receiver's
 *       completion, the waiter's wake-up, the target's serving thread.
 *   <li>{@code reuse=true}: one batch per thread, {@link TransferBatch#reset()} between submits
 *       (Mooncake's allocateBatchID once, submit many); {@code false}: {@code newBatch} per submit.
 * </ul>
 *
 * {@code block} is small on purpose (64 bytes): the point is the fixed cost, not bandwidth.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xmx1g"})
public class SubmitBenchmark {
    @Param({"local", "tcp"})
    public String target;

    @Param({"64"})
    public int block;

    @Param({"true", "false"})
    public boolean reuse;

    private TransferEngine engine;
    private TransferEngine peer;
    private HostMemory src;
    private HostMemory dst;
    private Segment segment;
    private TransferBatch b1;
    private TransferBatch b16;
    private TransferBatch b128;

    @Setup(Level.Trial)
    public void start() {
        engine = TransferEngine.create(config());
        src = engine.allocate(128L * block);
        if (target.equals("local")) {
            dst = engine.allocate(128L * block);
            segment = engine.openSegment(engine.localSegmentName());
        } else if (target.equals("tcp")) {
            peer = TransferEngine.create(config());
            dst = peer.allocate(128L * block);
            segment = engine.openSegment(peer.localSegmentName());
            engine.warmupSegment(segment.name());
        } else {
            throw new IllegalArgumentException("target must be local or tcp, not " + target);
        }
        b1 = engine.newBatch(1);
        b16 = engine.newBatch(16);
        b128 = engine.newBatch(128);
    }

    static EngineConfig config() {
        return EngineConfig.builder().protocol("tcp").localHostname("127.0.0.1").build();
    }

    @TearDown(Level.Trial)
    public void stop() {
        engine.close();
        if (peer != null) {
            peer.close();
        }
        src.close();
        dst.close();
    }

    private TransferBatch run(TransferBatch reusable, int n) {
        TransferBatch b;
        if (reuse) {
            b = reusable.reset();
        } else {
            b = engine.newBatch(n);
        }
        long s = src.address();
        long d = dst.address();
        for (int i = 0; i < n; i++) {
            long off = (long) i * block;
            b.add(Opcode.WRITE, segment, s + off, d + off, block);
        }
        b.submit().join();
        if (!b.isAllCompleted()) {
            throw new IllegalStateException("a request did not complete: " + b.status(0) + " " + b.failureReason(0));
        }
        return b;
    }

    /** One request per batch. */
    @Benchmark
    @OperationsPerInvocation(1)
    public TransferBatch batch001() {
        return run(b1, 1);
    }

    /** 16 requests per batch; the figure is per request. */
    @Benchmark
    @OperationsPerInvocation(16)
    public TransferBatch batch016() {
        return run(b16, 16);
    }

    /** 128 requests per batch (Mooncake's bench default); the figure is per request. */
    @Benchmark
    @OperationsPerInvocation(128)
    public TransferBatch batch128() {
        return run(b128, 128);
    }
}
