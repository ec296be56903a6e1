package io.mooncake4j.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.testkit.DeviceTargetProcess;
import io.mooncake4j.testkit.TargetProcessHandle;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * GPU-aware TCP between two processes on loopback, on a real GPU: this JVM's engine and a child
 * JVM's ({@link DeviceTargetProcess}, JCuda's provider from the class path) each hold {@code
 * cuda:0} memory, and requests move it device to device, host to device and back, both READ and
 * WRITE, staged through pinned buffers on both sides. Device bytes are read back with the driver
 * and asserted. Skipped, saying why, without a GPU.
 */
@Tag("gpu")
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class TcpGpuTransferGpuTest {
    private static final int MIB = 1 << 20;
    private static final int SIZE = 64 * MIB;
    private static TargetProcessHandle child;
    private static TransferEngine engine;
    private static Segment peer;

    @BeforeAll
    static void open() throws Exception {
        if (new CudaDeviceMemoryProvider().isAvailable()) {
            child = DeviceTargetProcess.start("tcp", SIZE, false);
            engine = tcpEngine();
            peer = engine.openSegment(child.segment);
        }
    }

    /** A tcp engine with CUDA IPC off, so the same-host child's GPU memory goes through GPU-aware TCP. */
    static TransferEngine tcpEngine() {
        return TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol("tcp")
                .set(EngineConfig.CUDA_IPC, "0")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(Duration.ofSeconds(30))
                .build());
    }

    @BeforeEach
    void requireGpu() {
        GpuMemory.requireGpu();
    }

    @AfterAll
    static void close() throws Exception {
        if (engine != null) {
            Map<String, Long> c = engine.counters();
            if (c.get("tcp.parts_completed") == 0 || c.get("cuda_ipc.requests") != 0) {
                throw new AssertionError("the GPU transfers must have gone through GPU-aware TCP: " + c);
            }
            engine.close();
        }
        if (child != null) {
            child.close();
        }
    }

    @Test
    void shouldWriteAndReadDeviceToDeviceBetweenProcessesByteExact() {
        int[] sizes = {1, 4097, (512 << 10) + 3, MIB + 5, SIZE};
        int seed = 1;
        try (DeviceMemory gpu = engine.allocate(SIZE, MemoryLocation.cuda(0));
                DeviceMemory back = engine.allocate(SIZE, MemoryLocation.cuda(0))) {
            for (int n : sizes) {
                byte[] data = GpuMemory.pattern(n, seed++);
                GpuMemory.write(gpu.address(), data);
                engine.write(peer, gpu.address(), child.address, n); // cuda:0 -> the child's cuda:0
                engine.read(peer, back.address(), child.address, n); // the child's cuda:0 -> cuda:0
                assertArrayEquals(data, GpuMemory.read(back.address(), n), n + " bytes device to device and back");
            }
        }
    }

    @Test
    void shouldMoveBetweenHostAndDeviceMemoryAcrossProcessesInBothDirections() {
        int n = 3 * MIB + 7;
        long remoteHost = DeviceTargetProcess.hostAddress(child);
        byte[] data = GpuMemory.pattern(n, 9);
        try (DeviceMemory gpu = engine.allocate(n, MemoryLocation.cuda(0));
                HostMemory host = engine.allocate(n)) {
            NativeMemory.wrap(host.address(), n).put(data);
            engine.write(peer, host.address(), child.address, n); // host -> the child's device
            engine.read(peer, gpu.address(), child.address, n); // the child's device -> device
            assertArrayEquals(data, GpuMemory.read(gpu.address(), n), "host -> remote device -> device");
            byte[] other = GpuMemory.pattern(n, 10);
            GpuMemory.write(gpu.address(), other);
            engine.write(peer, gpu.address(), remoteHost, n); // device -> the child's host memory
            engine.read(peer, host.address(), remoteHost, n); // back into host memory
            byte[] got = new byte[n];
            NativeMemory.wrap(host.address(), n).get(got);
            assertArrayEquals(other, got, "device -> remote host -> host");
        }
    }

    @Test
    void shouldMoveABatchOf64BlocksOf1MiBDeviceToDevice() throws Exception {
        try (DeviceMemory gpu = engine.allocate(SIZE, MemoryLocation.cuda(0));
                DeviceMemory back = engine.allocate(SIZE, MemoryLocation.cuda(0))) {
            byte[] data = GpuMemory.pattern(SIZE, 21);
            GpuMemory.write(gpu.address(), data);
            TransferBatch w = engine.newBatch(64);
            TransferBatch r = engine.newBatch(64);
            for (int i = 0; i < 64; i++) {
                w.write(peer, gpu.address() + (long) i * MIB, child.address + (long) (63 - i) * MIB, MIB); // reversed
                r.read(peer, back.address() + (long) i * MIB, child.address + (long) i * MIB, MIB);
            }
            assertTrue(w.submit().await(Duration.ofSeconds(60)));
            for (int i = 0; i < 64; i++) {
                assertEquals(TransferStatus.COMPLETED, w.status(i), w.failureReason(i));
            }
            assertTrue(r.submit().await(Duration.ofSeconds(60)));
            byte[] got = GpuMemory.read(back.address(), SIZE);
            for (int i = 0; i < 64; i++) {
                assertEquals(TransferStatus.COMPLETED, r.status(i), r.failureReason(i));
                assertArrayEquals(java.util.Arrays.copyOfRange(data, (63 - i) * MIB, (64 - i) * MIB),
                        java.util.Arrays.copyOfRange(got, i * MIB, (i + 1) * MIB), "block " + i);
            }
        }
    }
}
