package io.mooncake4j.transport.efa;

import io.mooncake4j.testkit.AbstractTransportConformanceTest;
import java.util.Map;

/** The transport conformance suite for efa on libfabric's {@code shm} provider. */
class EfaShmConformanceTest extends AbstractTransportConformanceTest {
    @Override
    protected String protocol() {
        return "efa";
    }

    @Override
    protected Map<String, String> settings() {
        return Map.of("MC_EFA_PROVIDER", "shm", "MOONCAKE_DEVICE", "all");
    }
}
