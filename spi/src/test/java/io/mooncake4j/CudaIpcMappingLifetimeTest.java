package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.testkit.DeviceTargetProcess;
import io.mooncake4j.testkit.FakeGpu;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A peer buffer's mapping outlives the descriptor that showed it while a copy through it is still
 * on the "device": retired at the re-fetch, unmapped only when that copy ends. Two engines of one
 * JVM with {@link FakeGpu}, whose mapping of the peer's shared file is unmapped for real on close,
 * so a copy through a closed mapping would fault.
 */
@Timeout(60)
class CudaIpcMappingLifetimeTest {
    private static final int N = 64 << 10;

    @AfterEach
    void reset() {
        FakeGpu.sharing = false;
        FakeGpu.gate = null;
    }

    private static TransferEngine engine() {
        return FakeGpu.installedFor(() -> TransferEngine.create(TransferEngineTest.config().build()));
    }

    @Test
    void shouldKeepAMappingUntilItsCopyEndsWhenThePeerReplacesTheBuffer() throws Exception {
        FakeGpu.sharing = true;
        CountDownLatch gate = new CountDownLatch(1);
        try (TransferEngine engine = engine(); TransferEngine peer = engine(); HostMemory host = engine.allocate(N)) {
            DeviceMemory old = peer.allocate(N, MemoryLocation.cuda(0));
            NativeMemory.wrap(old.address(), N).put(0, DeviceTargetProcess.pattern(5, 0, N));
            Segment target = engine.openSegment(peer.localSegmentName());
            int closes = FakeGpu.IPC_CLOSES.get();
            FakeGpu.gate = gate;
            TransferBatch b = engine.newBatch(1).read(target, host.address(), old.address(), N).submit();
            assertEquals(1, engine.counters().get("cuda_ipc.requests"));

            try (DeviceMemory replacement = peer.allocate(N, MemoryLocation.cuda(0))) {
                old.close(); // the peer frees it; our mapping of its pages stays until our copy ends
                engine.refreshSegment(target);
                assertFalse(target.descriptor().buffers().stream().anyMatch(x -> x.address() == old.address()));
                assertEquals(closes, FakeGpu.IPC_CLOSES.get(), "retired, but a copy still holds it");
                assertFalse(b.await(Duration.ofMillis(50)), "the copy waits at the gate");

                gate.countDown();
                assertTrue(b.await(Duration.ofSeconds(30)));
                assertEquals(TransferStatus.COMPLETED, b.status(0), b.failureReason(0));
                byte[] got = new byte[N];
                host.buffer().get(0, got);
                assertArrayEquals(DeviceTargetProcess.pattern(5, 0, N), got);
                Map<String, Long> counters = engine.counters();
                assertEquals(1, counters.get("cuda_ipc.closes"), "unmapped once its copy ended: " + counters);
                assertEquals(closes + 1, FakeGpu.IPC_CLOSES.get());
            }
        } finally {
            gate.countDown();
        }
    }
}
