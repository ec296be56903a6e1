package io.mooncake4j.samples;

import io.mooncake4j.testkit.ModuleBoundary;
import org.junit.jupiter.api.Test;

class SamplesModuleBoundaryTest {
    @Test
    void shouldNotUseTheEngineInternals() {
        ModuleBoundary.checkNoInternalAccess(io.mooncake4j.samples.cli.JavaCommand.class, SamplesModuleBoundaryTest.class);
    }
}
