package io.mooncake4j.transport.efa;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.testkit.AbstractTwoProcessTransportTest;
import java.time.Duration;
import java.util.Map;

/**
 * Transfers to a target engine in another JVM over efa on {@code tcp;ofi_rxm} (the child takes the
 * provider from the environment the build sets), including killing it mid-batch: the in-flight
 * writes end FAILED from the provider's error queue within the deadline and the engine stays usable.
 */
class EfaTwoProcessTest extends AbstractTwoProcessTransportTest {
    @Override
    protected String protocol() {
        return "efa";
    }

    @Override
    protected TransferEngine newEngine(Duration deadline) {
        return TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol("efa")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(deadline)
                .set(EfaSettings.PROVIDER, "tcp;ofi_rxm")
                .set(EngineConfig.DEVICE, "lo")
                .build());
    }
}
