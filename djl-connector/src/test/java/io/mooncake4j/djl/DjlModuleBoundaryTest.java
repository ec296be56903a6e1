package io.mooncake4j.djl;

import io.mooncake4j.testkit.ModuleBoundary;
import org.junit.jupiter.api.Test;

class DjlModuleBoundaryTest {
    @Test
    void shouldNotUseTheEngineInternals() {
        ModuleBoundary.checkNoInternalAccess(KvException.class, DjlModuleBoundaryTest.class);
    }
}
