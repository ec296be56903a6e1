package io.mooncake4j.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.spi.DeviceMemoryProvider;
import java.util.ServiceLoader;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Where there is no GPU (CI): cuda:N is refused, saying what is missing and what to add. */
class CudaUnavailableTest {
    @BeforeEach
    void onlyWithoutAGpu() {
        assumeFalse(new CudaDeviceMemoryProvider().isAvailable(), "a CUDA device is present: the refusal path needs a host without one");
    }

    @Test
    void shouldDiscoverTheProviderAndSayWhyItIsUnavailableWhenNoGpu() {
        DeviceMemoryProvider cuda = ServiceLoader.load(DeviceMemoryProvider.class).stream()
                .map(ServiceLoader.Provider::get)
                .filter(p -> p instanceof CudaDeviceMemoryProvider).findFirst().orElseThrow();
        assertFalse(cuda.isAvailable());
        assertEquals(0, cuda.deviceCount());
        String cause = cuda.unavailabilityCause().getMessage();
        assertTrue(cause.contains("libcuda.so.1") || cause.contains("no CUDA device"), cause);
    }

    @Test
    void shouldRefuseCudaLocationNamingWhatToAddWhenNoGpu() {
        MooncakeException e;
        try (TransferEngine engine = GpuEngines.create()) {
            e = assertThrows(MooncakeException.class, () -> engine.allocate(4096, MemoryLocation.cuda(0)));
        }
        assertEquals(ErrorCode.REGISTRATION, e.code());
        assertTrue(e.getMessage().contains("cuda:0 cannot be used"), e.getMessage());
        assertTrue(e.getMessage().contains(CudaDeviceMemoryProvider.class.getName() + " is unavailable"), e.getMessage());
        assertTrue(e.getMessage().contains("org.jcuda:jcuda:12.6.0"), e.getMessage());
    }

    @Test
    void shouldRefuseAllocationWithTheCauseWhenNoGpu() {
        MooncakeException e = assertThrows(MooncakeException.class, () -> new CudaDeviceMemoryProvider().allocate(MemoryLocation.cuda(0), 4096));
        assertEquals(ErrorCode.TRANSPORT_UNAVAILABLE, e.code());
        assertTrue(e.getMessage().contains("CUDA is unavailable"), e.getMessage());
    }
}
