package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.samples.cli.CliRun;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.testkit.FakeGpu;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code bench --use_vram} on CPU, over the test kit's {@link FakeGpu} (host memory it calls {@code
 * cuda:0}, copied by its copier thread): the same-process run and {@code --verify} on device
 * buffers, the target's device buffer, {@code --init_mem} on device memory and {@code --gpu_id=-1}.
 * Two processes need a transport that carries GPU memory, which the GPU suite runs.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class VramBenchTest {
    private static final String CLOSING =
            "Test completed: duration \\d+\\.\\d{2}, batch count \\d+, throughput \\d+\\.\\d{2} GB/s";

    private static CliRun withFakeGpu(String... args) {
        return FakeGpu.installedFor(() -> CliRun.run(args));
    }

    @Test
    void shouldRunAndVerifyOnDeviceBuffersInOneProcess() {
        int copies = FakeGpu.COPY_CALLS.get();
        CliRun r = withFakeGpu("bench", "--segment_id=self", "--use_vram", "--protocol=tcp",
                "--local_server_name=127.0.0.1", "--buffer_size=1M", "--block_size=4K", "--threads=2",
                "--batch_size=8", "--duration=0.5", "--verify", "--operation=write");
        assertEquals(Main.OK, r.exitCode, r.toString());
        assertTrue(r.out.contains("use_vram: 1 MiB on cuda:0"), r.toString());
        assertTrue(r.out.contains("Verify: OK, 16 blocks (64 KiB)"), r.toString());
        assertTrue(r.lastLine().matches(CLOSING), r.toString());
        assertTrue(FakeGpu.COPY_CALLS.get() - copies > 10, "the device copier moved the bench's blocks");
    }

    @Test
    void shouldServeADeviceBufferAsTarget() {
        CliRun r = withFakeGpu("bench", "--mode=target", "--use_vram", "--protocol=tcp",
                "--local_server_name=127.0.0.1", "--buffer_size=1M", "--target_duration=0.2");
        assertEquals(Main.OK, r.exitCode, r.toString());
        assertTrue(r.out.contains(", buffer 1 MiB on cuda:0 at 0x"), r.toString());
    }

    @Test
    void shouldFillDeviceBuffersWithInitMemAndSpreadThemOverEveryGpu() {
        try (TransferEngine engine = FakeGpu.installedFor(() -> TransferEngine.create(EngineConfig.builder()
                .environment(Map.of()).protocol("tcp").localHostname("127.0.0.1").rpcPortRange(0, 0).build()))) {
            List<MemoryLocation> every = BenchMemory.gpus(engine, BenchMemory.EVERY_GPU);
            assertEquals(List.of(MemoryLocation.cuda(0), MemoryLocation.cuda(1)), every, "the fake provider has two GPUs");
            assertEquals(List.of(MemoryLocation.cuda(3)), BenchMemory.gpus(engine, 3));
            try (BenchMemory m = BenchMemory.allocate(engine, 3 << 20, true, BenchMemory.EVERY_GPU, true)) {
                assertEquals(every, m.locations(), "a buffer on every GPU");
                for (int g = 0; g < every.size(); g++) {
                    BufferDescriptor published = engine.localDescriptor().bufferContaining(m.addresses()[g], 3 << 20);
                    assertEquals(every.get(g).toString(), published.name());
                    byte[] bytes = new byte[3 << 20];
                    NativeMemory.wrap(m.addresses()[g], bytes.length).get(bytes); // the fake device memory
                    for (int i = 0; i < bytes.length; i++) {
                        if (bytes[i] != (byte) 0xCC) {
                            throw new AssertionError(every.get(g) + ": byte " + i + " is " + bytes[i] + ", not 0xCC");
                        }
                    }
                }
            }
            assertFalse(engine.localDescriptor().buffers().stream().anyMatch(b -> b.name().startsWith("cuda:")),
                    "closed buffers are unregistered");
        }
    }
}
