package io.mooncake4j.transport.efa;

import io.mooncake4j.testkit.ModuleBoundary;
import org.junit.jupiter.api.Test;

/** plugin-efa has no classes yet: its package-info anchors the main output so the check covers code as it lands. */
class EfaModuleBoundaryTest {
    @Test
    void shouldNotUseTheEngineInternals() throws Exception {
        ModuleBoundary.checkNoInternalAccess(Class.forName("io.mooncake4j.transport.efa.package-info"), EfaModuleBoundaryTest.class);
    }
}
