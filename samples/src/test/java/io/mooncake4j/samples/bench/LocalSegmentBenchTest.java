package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Opcode;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The bench loop and the verify phase against the engine's own segment (same-process copies): no
 * second process, so these check the bench's own logic.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LocalSegmentBenchTest {
    private static final MemoryLocation HOST = MemoryLocation.CPU;
    private static TransferEngine engine;
    private static HostMemory local;
    private static HostMemory target;
    private static Segment self;

    @BeforeAll
    static void start() {
        engine = TransferEngine.create(EngineConfig.builder().protocol("tcp").localHostname("127.0.0.1").build());
        local = engine.allocate(1 << 20);
        target = engine.allocate(1 << 20);
        self = engine.openSegment(engine.localSegmentName());
    }

    @AfterAll
    static void stop() {
        local.close();
        target.close();
        engine.close();
    }

    private static BlockLayout layout(long block, int batch, int threads) {
        return BlockLayout.of(block, batch, threads, new long[] {local.address()}, local.length(),
                List.of(new BufferDescriptor("cpu:0", target.address(), target.length())));
    }

    @Test
    void shouldCountWhatTheLoopMoved() {
        ThroughputLoop.Result r = new ThroughputLoop(engine, self, layout(4096, 8, 2), Opcode.WRITE)
                .run(0.3, null, ReportUnit.GB);
        assertTrue(r.batches() > 0, "no batch completed");
        assertEquals(r.batches() * 8 * 4096, r.bytes());
        assertEquals(r.batches() * 8, r.requests());
        assertTrue(r.seconds() >= 0.3, "duration " + r.seconds());
        assertTrue(r.meanBatchMillis() > 0);
    }

    @Test
    void shouldPassVerificationWhenBytesArrive() {
        VerifyPhase.Result v = new VerifyPhase(engine, self, layout(4096, 16, 4), new VerifyPattern(7), HOST)
                .run(VerifyPhase.DEFAULT_MAX_BYTES);
        assertTrue(v.ok(), String.valueOf(v.mismatch()));
        assertEquals(64, v.blocks());
        assertEquals(64 * 4096, v.bytes());
    }

    @Test
    void shouldLeaveThePatternOnTheTarget() {
        VerifyPattern p = new VerifyPattern(0xabcdef);
        BlockLayout l = layout(8192, 4, 2);
        VerifyPhase.Result v = new VerifyPhase(engine, self, l, p, HOST).run(VerifyPhase.DEFAULT_MAX_BYTES);
        assertTrue(v.ok());
        // Block 3 is request 1 of thread 1; its bytes on the target are the pattern of (buffer 0, block 3).
        assertEquals(-1, p.firstMismatch(target.buffer(3 * 8192, 8192), 3));
    }

    @Test
    void shouldFindAByteCorruptedOnTheTargetBetweenWriteAndRead() {
        BlockLayout l = layout(4096, 8, 2);
        VerifyPhase.Result v = new VerifyPhase(engine, self, l, new VerifyPattern(21), HOST).run(
                VerifyPhase.DEFAULT_MAX_BYTES, () -> {
                    ByteBuffer b = target.buffer(5 * 4096 + 100, 1);
                    b.put(0, (byte) ~b.get(0));
                });
        assertFalse(v.ok());
        VerifyPhase.Mismatch m = v.mismatch();
        assertEquals(5, m.remoteBlock());
        assertEquals(100, m.offset());
        assertEquals(target.address() + 5 * 4096, m.remoteAddress());
        assertEquals(1, m.blocksDiffering());
        assertEquals((byte) ~m.expected(), m.actual());
        assertTrue(m.toString().contains("differs at byte offset 100"), m.toString());
    }

    @Test
    void shouldFailEveryBlockWhenTheTargetLostTheWrites() {
        VerifyPhase.Result v = new VerifyPhase(engine, self, layout(4096, 8, 2), new VerifyPattern(22), HOST).run(
                VerifyPhase.DEFAULT_MAX_BYTES, () -> NativeMemory.fill(target.address(), target.length(), 0));
        assertFalse(v.ok());
        assertEquals(16, v.mismatch().blocksDiffering());
        assertEquals(0, v.mismatch().block());
    }
}
