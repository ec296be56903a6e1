package io.mooncake4j.transport.tcp;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.testkit.FakeGpu;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The target's side of GPU-aware TCP, in one JVM with {@link FakeGpu}: the initiator's memory is host
 * memory, so only the target stages, and holding the fake device's copies shows what the target
 * waits for.
 */
@Tag("integration")
@Timeout(60)
class TcpGpuTargetIntegrationTest {
    @AfterEach
    void openGate() {
        FakeGpu.openGate();
    }

    private static TransferEngine engine() {
        return FakeGpu.installedFor(() -> TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol("tcp")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .build()));
    }

    @Test
    void shouldCompleteAWriteIntoGpuMemoryOnlyOnceItsBytesAreInDeviceMemory() throws Exception {
        long n = (1 << 20) + 3; // three chunks
        try (TransferEngine a = engine();
                TransferEngine b = engine();
                HostMemory src = a.allocate(n);
                DeviceMemory dst = b.allocate(n, MemoryLocation.cuda(0))) {
            Segment peer = a.openSegment(b.localSegmentName());
            a.warmupSegment(b.localSegmentName());
            fillRandom(src.address(), n, 5);
            CountDownLatch gate = new CountDownLatch(1);
            FakeGpu.gate = gate; // the target's copies to the device are held
            TransferBatch w = a.newBatch(1).write(peer, src.address(), dst.address(), n).submit();
            boolean early;
            try {
                early = w.await(Duration.ofMillis(500));
            } finally {
                gate.countDown(); // before the memory is freed, whatever happened
                FakeGpu.gate = null;
            }
            assertFalse(early, "the status frame waits for the copies to the device");
            assertTrue(w.await(Duration.ofSeconds(10)));
            assertEquals(TransferStatus.COMPLETED, w.status(0), w.failureReason(0));
            assertSameBytes(src.address(), dst.address(), n, "bytes in device memory when the WRITE completed");
        }
    }
}
