package io.mooncake4j.gpu.cuda;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.util.Map;

/** Engines for the GPU tests and bench: the in-memory test transport, loopback on 127.0.0.1. */
final class GpuEngines {
    private GpuEngines() {}

    static TransferEngine create() {
        return TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol(InMemoryTransportProvider.PROTOCOL)
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .build());
    }
}
