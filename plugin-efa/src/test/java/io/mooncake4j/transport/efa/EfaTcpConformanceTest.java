package io.mooncake4j.transport.efa;

import io.mooncake4j.testkit.AbstractTransportConformanceTest;
import java.util.Map;

/** The transport conformance suite for efa on libfabric's {@code tcp;ofi_rxm} over loopback. */
class EfaTcpConformanceTest extends AbstractTransportConformanceTest {
    @Override
    protected String protocol() {
        return "efa";
    }

    @Override
    protected Map<String, String> settings() {
        return Map.of("MC_EFA_PROVIDER", "tcp;ofi_rxm", "MOONCAKE_DEVICE", "lo");
    }
}
