package io.mooncake4j.transport.tcp;

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
import io.mooncake4j.testkit.FakeGpu;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * GPU memory over TCP through the engine, on CPU with {@link FakeGpu} as the device provider: GPU-aware
 * TCP is not there yet, so a request with GPU memory on either side ends INVALID before a byte is
 * sent, saying what works instead, and neither side's memory is touched.
 */
@Tag("integration")
@Timeout(60)
class TcpGpuMemoryIntegrationTest {
    private static final int N = 4096;
    private TransferEngine a;
    private TransferEngine b;

    private static TransferEngine engine() {
        return FakeGpu.installedFor(() -> TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol("tcp")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .build()));
    }

    @BeforeEach
    void start() {
        a = engine();
        b = engine();
    }

    @AfterEach
    void stop() {
        a.close();
        b.close();
    }

    @Test
    void shouldFailInvalidAtOnceWhenEitherSideIsGpuMemory() throws Exception {
        try (HostMemory hostA = a.allocate(N);
                DeviceMemory gpuA = a.allocate(N, MemoryLocation.cuda(0));
                HostMemory hostB = b.allocate(N);
                DeviceMemory gpuB = b.allocate(N, MemoryLocation.cuda(0))) {
            fill(gpuA.address(), (byte) 1);
            fill(hostB.address(), (byte) 0x5A);
            fill(gpuB.address(), (byte) 0x5A);
            Segment peer = a.openSegment(b.localSegmentName());
            TransferBatch batch = a.newBatch(4)
                    .write(peer, gpuA.address(), hostB.address(), N) // local GPU
                    .write(peer, hostA.address(), gpuB.address(), N) // remote GPU
                    .read(peer, hostA.address(), gpuB.address(), N) // remote GPU
                    .write(peer, hostA.address(), hostB.address() + 8, 8); // host only: goes through
            assertTrue(batch.submit().await(java.time.Duration.ofSeconds(30)));
            for (int i = 0; i < 3; i++) {
                assertEquals(TransferStatus.INVALID, batch.status(i), "request " + i);
                assertTrue(batch.failureReason(i).contains("GPU-aware TCP is not available yet"), batch.failureReason(i));
                assertTrue(batch.failureReason(i).contains("same-process (loopback)"), batch.failureReason(i));
                assertTrue(batch.failureReason(i).contains("FI_HMEM"), batch.failureReason(i));
            }
            assertEquals(TransferStatus.COMPLETED, batch.status(3));
            byte[] expected = new byte[N];
            java.util.Arrays.fill(expected, (byte) 0x5A);
            java.util.Arrays.fill(expected, 8, 16, (byte) 0);
            assertArrayEquals(expected, bytes(hostB.address()));
            java.util.Arrays.fill(expected, (byte) 0x5A);
            assertArrayEquals(expected, bytes(gpuB.address()));
        }
    }

    private static void fill(long address, byte value) {
        NativeMemory.wrap(address, N).put(filled(value));
    }

    private static byte[] filled(byte value) {
        byte[] b = new byte[N];
        java.util.Arrays.fill(b, value);
        return b;
    }

    private static byte[] bytes(long address) {
        byte[] b = new byte[N];
        NativeMemory.wrap(address, N).get(b);
        return b;
    }
}
