package io.mooncake4j.samples.serving;

import io.mooncake4j.djl.connector.KvConnectorConfig;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Option;

/**
 * The KV cache and compute flags of the prefill and decode workers. Unset KV flags fall back to the
 * connector's settings ({@code MC_KV_POOL_MB}, {@code MC_KV_BLOCK_TOKENS}, {@code MC_KV_DTYPE}...).
 */
public final class WorkerOptions {
    @Option(names = "--kv_pool_mb", paramLabel = "MIB",
            description = "Size of the registered paged KV pool. Default: $MC_KV_POOL_MB, else 256"
                    + " (raised to hold at least one request of the model's whole context).")
    Long kvPoolMb;

    @Option(names = "--kv_block_tokens", paramLabel = "N",
            description = "Positions per KV block. Default: $MC_KV_BLOCK_TOKENS, else 16.")
    Integer kvBlockTokens;

    @Option(names = "--kv_dtype", paramLabel = "float32|float16",
            description = "Data type of the KV cache. Default: $MC_KV_DTYPE, else float32 (float16 halves the bytes"
                    + " moved but rounds the cache, so greedy output may differ from generate's).")
    String kvDtype;

    @Option(names = "--torch_threads", paramLabel = "N",
            description = "PyTorch intra-op threads. Default: 1 (small models; several JVMs on few cores).")
    int torchThreads = 1;

    /** The connector's settings: these flags over the environment. */
    KvConnectorConfig kvConfig() {
        KvConnectorConfig.Builder b = KvConnectorConfig.builder();
        if (kvPoolMb != null) {
            b.set(KvConnectorConfig.POOL_MB, Long.toString(kvPoolMb));
        }
        if (kvBlockTokens != null) {
            b.blockTokens(kvBlockTokens);
        }
        if (kvDtype != null) {
            b.set(KvConnectorConfig.DTYPE, kvDtype);
        }
        return b.build();
    }

    /** The flags that give a child process the same settings. */
    List<String> asArguments() {
        List<String> a = new ArrayList<>();
        if (kvPoolMb != null) {
            a.add("--kv_pool_mb=" + kvPoolMb);
        }
        if (kvBlockTokens != null) {
            a.add("--kv_block_tokens=" + kvBlockTokens);
        }
        if (kvDtype != null) {
            a.add("--kv_dtype=" + kvDtype);
        }
        a.add("--torch_threads=" + torchThreads);
        return a;
    }
}
