package io.mooncake4j.transport.tcp;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * GPU-aware TCP overlaps the staging copies of consecutive WRITEs on one lane, in one JVM with
 * {@link FakeGpu} whose copies are slow (2 ms each, one at a time per stager): the initiator copies
 * the next request's first chunks out of the device while the current one is on the socket, and the
 * target reads the next request while the last copies of a WRITE into the device run. Each request
 * is 1 MiB, two 512 KiB staging chunks, so a side that staged one request at a time would never
 * have more than two copies in flight; bytes are asserted, and every request completes.
 */
@Tag("integration")
@Timeout(60)
class TcpGpuOverlapIntegrationTest {
    private static final int REQUESTS = 16;
    private static final long REQUEST = 1 << 20;
    private static final long TOTAL = REQUESTS * REQUEST;

    @BeforeEach
    void slowCopies() {
        FakeGpu.stagedCopyDelayNanos = TimeUnit.MILLISECONDS.toNanos(2);
        FakeGpu.MAX_STAGED_IN_FLIGHT.set(0);
    }

    @AfterEach
    void fastCopies() {
        FakeGpu.stagedCopyDelayNanos = 0;
    }

    private static TransferEngine engine() {
        return FakeGpu.installedFor(() -> TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol("tcp")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .tcpLanesPerPeer(1)
                .set(TcpSettings.GPU_STAGING_CHUNK, Integer.toString(512 << 10)) // two chunks a 1 MiB request
                .transferTimeout(Duration.ofSeconds(30))
                .build()));
    }

    @Test
    void shouldCopyTheNextWriteOutOfTheDeviceWhileTheCurrentOneIsOnTheSocketWhenTheInitiatorStages() {
        assertTrue(writeAll(MemoryLocation.cuda(0), MemoryLocation.CPU) >= 3,
                "initiator stager: at most " + FakeGpu.MAX_STAGED_IN_FLIGHT.get() + " copies in flight");
    }

    @Test
    void shouldReadTheNextWriteWhileTheLastCopiesIntoTheDeviceRunWhenTheTargetStages() {
        assertTrue(writeAll(MemoryLocation.CPU, MemoryLocation.cuda(0)) >= 3,
                "target stager: at most " + FakeGpu.MAX_STAGED_IN_FLIGHT.get() + " copies in flight");
    }

    @Test
    void shouldKeepEveryByteAndStatusInOrderWhenBothSidesStageSlowly() {
        writeAll(MemoryLocation.cuda(0), MemoryLocation.cuda(0));
    }

    @Test
    void shouldAnswerStatusOneInOrderWhenACopyIntoTheDeviceFailsWhileTheNextWriteIsRead() {
        FakeGpu.STAGED_COPIES_BEFORE_FAILURE.set(5); // the target's sixth copy: request 2's second chunk
        FakeGpu.FAIL_STAGED_COPIES.set(1);
        try {
            writeAll(MemoryLocation.CPU, MemoryLocation.cuda(0), (w, src, dst) -> {
                assertEquals(TransferStatus.FAILED, w.status(2), "the request whose copy failed");
                assertTrue(w.failureReason(2).contains("rejected"), w.failureReason(2));
                for (int i = 0; i < REQUESTS; i++) {
                    // the request read behind the failed one may fail with it: its copies went with the stager
                    if (i == 2 || (i == 3 && w.status(i) == TransferStatus.FAILED)) {
                        continue;
                    }
                    assertEquals(TransferStatus.COMPLETED, w.status(i), "request " + i + ": " + w.failureReason(i));
                    assertSameBytes(src + i * REQUEST, dst + i * REQUEST, REQUEST, "request " + i);
                }
            });
        } finally {
            FakeGpu.FAIL_STAGED_COPIES.set(0);
            FakeGpu.STAGED_COPIES_BEFORE_FAILURE.set(0);
        }
    }

    /** What a test checks of the batch of WRITEs, from {@code src} to {@code dst}. */
    private interface Outcome {
        void check(TransferBatch w, long src, long dst);
    }

    /**
     * WRITEs {@link #REQUESTS} requests of 1 MiB from {@code from} memory into {@code to} memory of
     * another engine on one lane, checks that every one completed byte-exact and that the GPU paths
     * counted, and returns the most copies one stager had in flight.
     */
    private static long writeAll(MemoryLocation from, MemoryLocation to) {
        return writeAll(from, to, (w, src, dst) -> {
            for (int i = 0; i < REQUESTS; i++) {
                assertEquals(TransferStatus.COMPLETED, w.status(i), "request " + i + ": " + w.failureReason(i));
            }
            assertSameBytes(src, dst, TOTAL, "every WRITE in place");
        });
    }

    private static long writeAll(MemoryLocation from, MemoryLocation to, Outcome outcome) {
        try (TransferEngine a = engine();
                TransferEngine b = engine();
                AutoCloseable srcMemory = allocate(a, from);
                AutoCloseable dstMemory = allocate(b, to)) {
            long src = address(srcMemory);
            long dst = address(dstMemory);
            Segment peer = a.openSegment(b.localSegmentName());
            a.warmupSegment(b.localSegmentName());
            fillRandom(src, TOTAL, 11);
            long before = FakeGpu.STAGED_COPIES.get();
            TransferBatch w = a.newBatch(REQUESTS);
            for (int i = 0; i < REQUESTS; i++) {
                w.write(peer, src + i * REQUEST, dst + i * REQUEST, REQUEST);
            }
            w.submit();
            assertTrue(w.await(Duration.ofSeconds(30)), "the WRITEs end");
            outcome.check(w, src, dst);
            assertTrue(FakeGpu.STAGED_COPIES.get() - before >= 2L * (REQUESTS - 2), "GPU memory went through the stagers");
            if (from.isCuda()) {
                assertTrue(a.counters().get("tcp.gpu_prefetched_parts") > 0, "initiator: " + a.counters());
            }
            if (to.isCuda()) {
                assertTrue(b.counters().get("tcp.gpu_overlapped_writes") > 0, "target: " + b.counters());
            }
            return FakeGpu.MAX_STAGED_IN_FLIGHT.get();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    private static AutoCloseable allocate(TransferEngine e, MemoryLocation where) {
        return where.isCuda() ? e.allocate(TOTAL, where) : e.allocate(TOTAL);
    }

    private static long address(AutoCloseable memory) {
        return memory instanceof DeviceMemory d ? d.address() : ((HostMemory) memory).address();
    }
}
