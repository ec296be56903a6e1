package io.mooncake4j.transport.tcp;

import io.mooncake4j.testkit.ModuleBoundary;
import org.junit.jupiter.api.Test;

class TcpModuleBoundaryTest {
    @Test
    void shouldNotUseTheEngineInternals() {
        ModuleBoundary.checkNoInternalAccess(TcpTransportProvider.class, TcpModuleBoundaryTest.class);
    }
}
