package io.mooncake4j.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceStager;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The staging SPI on a real GPU: pinned host memory from {@code cuMemHostAlloc}, and a stager's
 * asynchronous copies through it in both directions, many in flight, bytes asserted; the calling
 * thread's current context is unchanged. Skipped, saying why, without a GPU.
 */
@Tag("gpu")
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class CudaStagerGpuTest {
    private static final int CHUNK = 512 << 10;

    @Test
    void shouldStageDeviceMemoryThroughPinnedChunksBothWaysWithoutTouchingTheCallersContext() {
        CudaDeviceMemoryProvider cuda = GpuMemory.requireGpu();
        int chunks = 80; // more than MAX_IN_FLIGHT: the stager waits for the oldest itself
        int n = chunks * CHUNK;
        byte[] data = GpuMemory.pattern(n, 3);
        try (DeviceAllocation src = cuda.allocate(MemoryLocation.cuda(0), n);
                DeviceAllocation dst = cuda.allocate(MemoryLocation.cuda(0), n);
                DeviceAllocation pinned = cuda.allocatePinned(n);
                DeviceStager stager = cuda.openStager()) {
            assertEquals(MemoryLocation.CPU, pinned.location());
            assertEquals(MemoryLocation.CPU, cuda.locate(pinned.address()));
            GpuMemory.write(src.address(), data);
            long before = GpuMemory.currentContext().value();
            long last = 0;
            for (int k = 0; k < chunks; k++) {
                last = stager.toHost(pinned.address() + (long) k * CHUNK, src.address() + (long) k * CHUNK, CHUNK);
            }
            stager.await(last);
            byte[] staged = new byte[n];
            NativeMemory.wrap(pinned.address(), n).get(staged);
            assertArrayEquals(data, staged, "device -> pinned");
            for (int k = chunks - 1; k >= 0; k--) { // reversed: blocks land where they belong
                last = stager.toDevice(dst.address() + (long) k * CHUNK, pinned.address() + (long) k * CHUNK, CHUNK);
            }
            stager.await(last);
            stager.await(last); // a second wait returns at once
            assertArrayEquals(data, GpuMemory.read(dst.address(), n), "pinned -> device");
            assertEquals(before, GpuMemory.currentContext().value(), "the caller's current context is unchanged");
            MooncakeException e = assertThrows(MooncakeException.class,
                    () -> stager.toDevice(pinned.address(), pinned.address(), 16));
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
            assertTrue(e.getMessage().contains("host memory, not device memory"), e.getMessage());
        }
    }
}
