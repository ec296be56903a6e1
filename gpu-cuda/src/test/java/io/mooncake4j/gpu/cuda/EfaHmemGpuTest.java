package io.mooncake4j.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.nativeio.NativeMemory;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * GPU memory on the efa transport for real: {@code cuda:0} regions registered with libfabric as
 * {@code FI_HMEM_CUDA} and moved by RMA between two engines, device to device and device to host,
 * byte-exact, with CUDA IPC turned off so that the bytes go through libfabric.
 *
 * <p>It needs a libfabric built with CUDA ({@code MC_LIBFABRIC_PATH}): AWS's (the EFA installer's)
 * is; Debian's and Ubuntu's are not, and there each provider is reported skipped, saying so (their
 * shm lists FI_HMEM, then refuses the CUDA registration as not implemented). On the H200 machine it
 * ran on shm with a libfabric 1.22 built with CUDA for that one run; 1.22's tcp;ofi_rxm has no FI_HMEM. The
 * providers come from {@code -Dmooncake4j.test.efa.providers} (default {@code shm} and {@code
 * tcp;ofi_rxm} on loopback); on an EFA instance add {@code efa}.
 */
@Tag("gpu")
@Timeout(120)
class EfaHmemGpuTest {
    private static final int MIB = 1 << 20;
    private static final int BLOCKS = 8;
    private static final int LENGTH = BLOCKS * MIB;

    static Stream<String> providers() {
        return Arrays.stream(System.getProperty("mooncake4j.test.efa.providers", "shm,tcp;ofi_rxm").split(","));
    }

    private static TransferEngine engine(String provider) {
        return TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol("efa")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .set("MC_EFA_PROVIDER", provider)
                .set(EngineConfig.DEVICE, provider.startsWith("tcp") ? "lo" : "all")
                .set(EngineConfig.CUDA_IPC, "0")
                .build());
    }

    /** GPU memory of {@code engine}, or the test skipped when its libfabric has no FI_HMEM for the provider. */
    private static DeviceMemory gpu(TransferEngine engine, String provider) {
        try {
            return engine.allocate(LENGTH, MemoryLocation.cuda(0));
        } catch (MooncakeException e) {
            assumeFalse(e.code() == ErrorCode.REGISTRATION
                            && (e.getMessage().contains("no FI_HMEM") || e.getMessage().contains("built without CUDA")),
                    () -> "skipped: libfabric provider '" + provider + "' has no FI_HMEM (CUDA) here: " + e.getMessage());
            throw e;
        }
    }

    @ParameterizedTest
    @MethodSource("providers")
    void shouldMoveGpuMemoryBetweenTwoEnginesThroughLibfabricWithFiHmemCuda(String provider) throws Exception {
        GpuMemory.requireGpu();
        try (TransferEngine a = engine(provider); TransferEngine b = engine(provider)) {
            try (DeviceMemory src = gpu(a, provider);
                    DeviceMemory back = gpu(a, provider);
                    HostMemory host = a.allocate(LENGTH);
                    DeviceMemory dst = gpu(b, provider)) {
                byte[] data = GpuMemory.pattern(LENGTH, 11);
                GpuMemory.write(src.address(), data);
                Segment peer = a.openSegment(b.localSegmentName());

                TransferBatch writes = a.newBatch(BLOCKS);
                for (int i = 0; i < BLOCKS; i++) { // reversed blocks, so a misplaced one shows
                    writes.write(peer, src.address() + (long) i * MIB, dst.address() + (long) (BLOCKS - 1 - i) * MIB, MIB);
                }
                assertTrue(writes.submit().await(Duration.ofSeconds(60)), "writes ended");
                assertTrue(writes.isAllCompleted(), writes.status(0) + " " + writes.failureReason(0));
                byte[] landed = GpuMemory.read(dst.address(), LENGTH);
                for (int i = 0; i < BLOCKS; i++) {
                    assertArrayEquals(Arrays.copyOfRange(data, i * MIB, (i + 1) * MIB),
                            Arrays.copyOfRange(landed, (BLOCKS - 1 - i) * MIB, (BLOCKS - i) * MIB), "GPU to remote GPU, block " + i);
                }

                TransferBatch reads = a.newBatch(2)
                        .read(peer, back.address(), dst.address(), LENGTH)
                        .read(peer, host.address(), dst.address(), LENGTH);
                assertTrue(reads.submit().await(Duration.ofSeconds(60)), "reads ended");
                assertTrue(reads.isAllCompleted(), reads.status(0) + " " + reads.failureReason(0) + "; "
                        + reads.status(1) + " " + reads.failureReason(1));
                assertArrayEquals(landed, GpuMemory.read(back.address(), LENGTH), "remote GPU to GPU");
                byte[] onHost = new byte[LENGTH];
                NativeMemory.wrap(host.address(), LENGTH).get(onHost);
                assertArrayEquals(landed, onHost, "remote GPU to host");

                Map<String, Long> counters = a.counters();
                long viaLibfabric = counters.entrySet().stream()
                        .filter(c -> c.getKey().startsWith("efa.") && c.getKey().endsWith(".bytes"))
                        .mapToLong(Map.Entry::getValue)
                        .sum();
                assertEquals(3L * LENGTH, viaLibfabric, "bytes moved by libfabric: " + counters);
                assertEquals(0L, counters.getOrDefault("cuda_ipc.requests", 0L), "CUDA IPC is off");
            }
        }
    }
}
