package io.mooncake4j.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.spi.DeviceIpcHandle;
import io.mooncake4j.testkit.DeviceTargetProcess;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import io.mooncake4j.testkit.TargetProcessHandle;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * CUDA IPC between two processes on the GPU: a child JVM ({@link DeviceTargetProcess}) registers
 * {@code cuda:0} memory and publishes its IPC handle; this engine reads and writes it device to
 * device through {@code cuIpcOpenMemHandle}. The child publishes a protocol this engine does not
 * install, so a request that did not go through IPC would end INVALID: COMPLETED with the right bytes
 * on both sides shows the IPC path. Skipped, saying why, without a GPU.
 */
@Tag("gpu")
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class CudaIpcGpuTest {
    private static final int N = 4 << 20;

    static TargetProcessHandle startTarget(long bytes) throws Exception {
        return TargetProcessHandle.start(DeviceTargetProcess.class,
                List.of(InMemoryTransportProvider.Second.PROTOCOL, Long.toString(bytes)), List.of("-Xmx512m"));
    }

    static long childCrc(TargetProcessHandle c, long offset, int length) throws Exception {
        String answer = c.command("crc " + offset + " " + length);
        assertTrue(answer.startsWith("CRC "), answer);
        return Long.parseLong(answer.substring(4));
    }

    @Test
    void shouldReadAndWriteAnotherProcessesGpuMemoryThroughCudaIpc() throws Exception {
        GpuMemory.requireGpu();
        try (TargetProcessHandle child = startTarget(4L * N)) {
            assertEquals("OK", child.command("fill 3"));
            TransferEngine engine = GpuEngines.create();
            try (HostMemory host = engine.allocate(2 * N);
                    DeviceMemory gpu = engine.allocate(2 * N, MemoryLocation.cuda(0))) {
                Segment peer = engine.openSegment(child.segment);
                String device = DeviceIpcHandle.fromJson(peer.buffers().get(0).extra().get(DeviceIpcHandle.FIELD)).device();
                assertTrue(device.matches("[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-9a-f]"), "a PCI bus id: " + device);
                byte[] up = GpuMemory.pattern(2 * N, 9);
                host.buffer().put(0, up);
                GpuMemory.write(gpu.address(), up);
                long remote = child.address;
                TransferBatch b = engine.newBatch(4)
                        .read(peer, gpu.address() + N, remote, N) // peer device -> device
                        .read(peer, host.address() + N, remote + N, N) // peer device -> host
                        .write(peer, gpu.address(), remote + 2 * N, N) // device -> peer device
                        .write(peer, host.address(), remote + 3 * N, N) // host -> peer device
                        .submit();
                assertTrue(b.await(Duration.ofSeconds(60)));
                for (int i = 0; i < 4; i++) {
                    assertEquals(TransferStatus.COMPLETED, b.status(i), "request " + i + ": " + b.failureReason(i));
                }
                assertArrayEquals(DeviceTargetProcess.pattern(3, 0, N), GpuMemory.read(gpu.address() + N, N), "READ into GPU memory");
                byte[] intoHost = new byte[N];
                host.buffer().get(N, intoHost);
                assertArrayEquals(DeviceTargetProcess.pattern(3, N, N), intoHost, "READ into host memory");
                long written = DeviceTargetProcess.crc(Arrays.copyOf(up, N));
                assertEquals(written, childCrc(child, 2 * N, N), "WRITE from GPU memory, as the peer sees it");
                assertEquals(written, childCrc(child, 3 * N, N), "WRITE from host memory, as the peer sees it");

                // KV-sized blocks, gathered out of order from the peer: one gather launch on mapped memory
                int blocks = 64;
                int block = 64 << 10;
                TransferBatch gather = engine.newBatch(blocks);
                for (int i = 0; i < blocks; i++) {
                    gather.read(peer, gpu.address() + (long) i * block, remote + (long) ((i * 37) % blocks) * block, block);
                }
                assertTrue(gather.submit().await(Duration.ofSeconds(60)));
                assertTrue(gather.isAllCompleted(), gather.status(0) + " " + gather.failureReason(0));
                byte[] gathered = GpuMemory.read(gpu.address(), blocks * block);
                for (int i = 0; i < blocks; i++) {
                    assertArrayEquals(DeviceTargetProcess.pattern(3, (long) ((i * 37) % blocks) * block, block),
                            Arrays.copyOfRange(gathered, i * block, (i + 1) * block), "block " + i);
                }

                // the peer frees its buffer and registers another: the old mapping is closed, the new one opened
                long fresh = Long.parseLong(child.command("reallocate").split(" ")[1]);
                assertEquals("OK", child.command("fill 4"));
                engine.read(peer, gpu.address(), fresh + N, N);
                assertArrayEquals(DeviceTargetProcess.pattern(4, N, N), GpuMemory.read(gpu.address(), N));
                Map<String, Long> counters = engine.counters();
                assertEquals(5 + blocks, counters.get("cuda_ipc.requests"), counters.toString());
                assertEquals(2, counters.get("cuda_ipc.opens"), counters.toString());
                assertEquals(1, counters.get("cuda_ipc.closes"), counters.toString());
                assertEquals(0, counters.get("cuda_ipc.open_failures"), counters.toString());
            } finally {
                engine.close();
            }
            assertEquals(2, engine.counters().get("cuda_ipc.closes"), "unmapped when the engine closed");
        }
    }
}
