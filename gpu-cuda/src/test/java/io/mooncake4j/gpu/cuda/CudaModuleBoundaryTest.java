package io.mooncake4j.gpu.cuda;

import io.mooncake4j.testkit.ModuleBoundary;
import org.junit.jupiter.api.Test;

class CudaModuleBoundaryTest {
    @Test
    void shouldNotUseTheEngineInternals() {
        ModuleBoundary.checkNoInternalAccess(CudaDeviceMemoryProvider.class, CudaModuleBoundaryTest.class);
    }
}
