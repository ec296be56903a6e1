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
import io.mooncake4j.testkit.DeviceTargetProcess;
import io.mooncake4j.testkit.FakeGpu;
import io.mooncake4j.testkit.TargetProcessHandle;
import java.time.Duration;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * GPU-aware TCP between two JVMs, on CPU: {@link FakeGpu} is the device provider on both sides (its
 * "device memory" is host memory, its stager copies on its own thread, and it refuses a host side
 * that is not pinned or a device side that is not device memory), so the staging, pipelining and
 * ordering logic of both the initiator and the target runs for real. Bytes are asserted.
 */
@Tag("integration")
@Timeout(180)
class TcpGpuMemoryIntegrationTest {
    private static final long SIZE = 64L << 20;
    private static TargetProcessHandle child;
    private TransferEngine engine;
    private Segment peer;
    private long remoteGpu;
    private long remoteHost;

    @BeforeEach
    void start() throws Exception {
        FakeGpu.FAIL_STAGED_COPIES.set(0);
        FakeGpu.STAGED_COPIES_BEFORE_FAILURE.set(0);
        child = DeviceTargetProcess.start("tcp", SIZE, true);
        remoteGpu = child.address;
        remoteHost = DeviceTargetProcess.hostAddress(child);
        engine = FakeGpu.installedFor(() -> TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol("tcp")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(Duration.ofSeconds(30))
                .build()));
        peer = engine.openSegment(child.segment);
    }

    @AfterEach
    void stop() throws Exception {
        FakeGpu.FAIL_STAGED_COPIES.set(0);
        FakeGpu.STAGED_COPIES_BEFORE_FAILURE.set(0);
        engine.close();
        child.close();
        assertEquals(0, FakeGpu.PINNED_BYTES.get(), "the staging buffers are freed when the engine closes");
    }

    @Test
    void shouldMoveEveryByteBetweenGpuAndHostMemoryInBothDirectionsAndProcesses() throws Exception {
        // chunks are 512 KiB: sizes below, at and across chunk and slice (1 MiB) boundaries, and 64 MiB
        long[] sizes = {1, 4097, (512 << 10) + 3, (1 << 20) + 5, (3 << 20) + 7, SIZE};
        long stagedBefore = FakeGpu.STAGED_COPIES.get();
        try (DeviceMemory gpu = engine.allocate(SIZE, MemoryLocation.cuda(0));
                DeviceMemory gpuBack = engine.allocate(SIZE, MemoryLocation.cuda(0));
                HostMemory host = engine.allocate(SIZE);
                HostMemory hostBack = engine.allocate(SIZE)) {
            long seed = 1;
            for (long n : sizes) {
                // GPU -> remote GPU (WRITE), remote GPU -> host (READ)
                fillRandom(gpu.address(), n, seed++);
                engine.write(peer, gpu.address(), remoteGpu, n);
                engine.read(peer, hostBack.address(), remoteGpu, n);
                assertSameBytes(gpu.address(), hostBack.address(), n, "GPU -> remote GPU -> host, " + n + " bytes");
                // host -> remote GPU (WRITE), remote GPU -> GPU (READ)
                fillRandom(host.address(), n, seed++);
                engine.write(peer, host.address(), remoteGpu, n);
                engine.read(peer, gpuBack.address(), remoteGpu, n);
                assertSameBytes(host.address(), gpuBack.address(), n, "host -> remote GPU -> GPU, " + n + " bytes");
                // GPU -> remote host (WRITE), remote host -> GPU (READ)
                fillRandom(gpu.address(), n, seed++);
                engine.write(peer, gpu.address(), remoteHost, n);
                engine.read(peer, gpuBack.address(), remoteHost, n);
                assertSameBytes(gpu.address(), gpuBack.address(), n, "GPU -> remote host -> GPU, " + n + " bytes");
                // host only: today's path, no staging
                long stagedNow = FakeGpu.STAGED_COPIES.get();
                fillRandom(host.address(), n, seed++);
                engine.write(peer, host.address(), remoteHost, n);
                engine.read(peer, hostBack.address(), remoteHost, n);
                assertSameBytes(host.address(), hostBack.address(), n, "host -> remote host -> host, " + n + " bytes");
                assertEquals(stagedNow, FakeGpu.STAGED_COPIES.get(), "host memory is never staged");
            }
        }
        assertTrue(FakeGpu.STAGED_COPIES.get() > stagedBefore, "the initiator staged its GPU memory");
        assertTrue(FakeGpu.PINNED_BYTES.get() > 0, "staging buffers are pooled while the engine runs");
        // the target's counters, as GpuTcpBench prints them: every WRITE into its GPU memory was served
        Map<String, Long> target = new java.util.HashMap<>();
        String line = child.command("counters tcp.");
        assertTrue(line.startsWith("COUNTERS tcp."), line);
        for (String kv : line.substring("COUNTERS ".length()).split(" ")) {
            String[] p = kv.split("=");
            target.put(p[0], Long.parseLong(p[1]));
        }
        assertTrue(target.get("tcp.served_requests") >= 2L * sizes.length, line);
        assertTrue(target.containsKey("tcp.gpu_overlapped_writes"), line);
    }

    @Test
    void shouldMoveABatchOfManySmallGpuBlocksBothWays() throws Exception {
        int n = 512;
        long block = 48 << 10;
        SplittableRandom rnd = new SplittableRandom(3);
        try (DeviceMemory gpu = engine.allocate(n * block, MemoryLocation.cuda(0));
                DeviceMemory back = engine.allocate(n * block, MemoryLocation.cuda(0))) {
            fillRandom(gpu.address(), n * block, 11);
            long[] len = new long[n];
            TransferBatch w = engine.newBatch(n);
            for (int i = 0; i < n; i++) {
                len[i] = 1 + rnd.nextInt((int) block); // not multiples of anything
                w.write(peer, gpu.address() + i * block, remoteGpu + i * block, len[i]);
            }
            assertTrue(w.submit().await(Duration.ofSeconds(60)));
            assertTrue(w.isAllCompleted(), () -> "write: " + w.failureReason(0));
            TransferBatch r = engine.newBatch(n);
            for (int i = n - 1; i >= 0; i--) { // out of order
                r.read(peer, back.address() + i * block, remoteGpu + i * block, len[i]);
            }
            assertTrue(r.submit().await(Duration.ofSeconds(60)));
            assertTrue(r.isAllCompleted(), () -> "read: " + r.failureReason(0));
            for (int i = 0; i < n; i++) {
                assertSameBytes(gpu.address() + i * block, back.address() + i * block, len[i], "block " + i);
            }
        }
    }

    @Test
    void shouldFailTheRequestWhenAStagedCopyFailsAndKeepThePeerUsable() throws Exception {
        long n = (3 << 20) + 11; // six chunks
        try (DeviceMemory gpu = engine.allocate(n, MemoryLocation.cuda(0));
                DeviceMemory back = engine.allocate(n, MemoryLocation.cuda(0))) {
            // WRITE, its first chunk's copy fails: nothing was sent, only this request fails
            assertFailsThenWorks(TransferBatch::write, gpu.address(), n, 0);
            // WRITE, a later chunk's copy fails: the payload is cut short, the lane is closed and reopened
            assertFailsThenWorks(TransferBatch::write, gpu.address(), n, 3);
            // READ into GPU memory, a copy in the middle fails: the rest is read and dropped, stream in step
            assertFailsThenWorks(TransferBatch::read, back.address(), n, 2);
            fillRandom(gpu.address(), n, 77);
            engine.write(peer, gpu.address(), remoteGpu, n);
            engine.read(peer, back.address(), remoteGpu, n);
            assertSameBytes(gpu.address(), back.address(), n, "after the failures");
        }
    }

    private interface Op {
        TransferBatch add(TransferBatch b, Segment s, long local, long remote, long length);
    }

    private void assertFailsThenWorks(Op op, long local, long n, int passBeforeFailure) throws Exception {
        FakeGpu.STAGED_COPIES_BEFORE_FAILURE.set(passBeforeFailure);
        FakeGpu.FAIL_STAGED_COPIES.set(1);
        TransferBatch b = op.add(engine.newBatch(1), peer, local, remoteGpu, n).submit();
        assertTrue(b.await(Duration.ofSeconds(30)));
        assertEquals(TransferStatus.FAILED, b.status(0), () -> "" + b.failureReason(0));
        assertTrue(b.failureReason(0).contains("injected copy failure"), b.failureReason(0));
        assertEquals(0, FakeGpu.FAIL_STAGED_COPIES.get(), "the failure was injected");
        TransferBatch again = op.add(engine.newBatch(1), peer, local, remoteGpu, n).submit();
        assertTrue(again.await(Duration.ofSeconds(30)));
        assertEquals(TransferStatus.COMPLETED, again.status(0), () -> "" + again.failureReason(0));
    }
}
