package io.mooncake4j.gpu.cuda;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.util.Map;

/** Engines for the GPU tests and bench, on 127.0.0.1. */
final class GpuEngines {
    private GpuEngines() {}

    /** An engine on the in-memory test transport (same-process copies only). */
    static TransferEngine create() {
        return TransferEngine.create(loopback().protocol(InMemoryTransportProvider.PROTOCOL).build());
    }

    /**
     * An engine that reaches other processes over the transport it picks itself (the available one
     * of the highest priority: tcp here), as an application's would.
     */
    static TransferEngine createNetworked() {
        return TransferEngine.create(loopback().build());
    }

    /**
     * A networked engine with CUDA IPC on or off ({@code MC_CUDA_IPC}): off, a same-host peer's GPU
     * memory is reached through the network transport (GPU-aware TCP) as a peer on another host is.
     */
    static TransferEngine createNetworked(boolean cudaIpc) {
        return TransferEngine.create(loopback().set(EngineConfig.CUDA_IPC, cudaIpc ? "1" : "0").build());
    }

    private static EngineConfig.Builder loopback() {
        return EngineConfig.builder().environment(Map.of()).localHostname("127.0.0.1").rpcPortRange(0, 0);
    }
}
