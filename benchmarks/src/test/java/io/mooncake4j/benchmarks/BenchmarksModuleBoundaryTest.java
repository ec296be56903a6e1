package io.mooncake4j.benchmarks;

import io.mooncake4j.testkit.ModuleBoundary;
import org.junit.jupiter.api.Test;

class BenchmarksModuleBoundaryTest {
    @Test
    void shouldNotUseTheEngineInternals() {
        ModuleBoundary.checkNoInternalAccess(RegistryBenchmark.class, BenchmarksModuleBoundaryTest.class);
    }
}
