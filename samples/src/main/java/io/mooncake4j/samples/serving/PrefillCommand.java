package io.mooncake4j.samples.serving;

import io.mooncake4j.djl.serving.KvRuntime;
import io.mooncake4j.samples.serving.model.ServingModel;
import io.mooncake4j.samples.serving.worker.PrefillWorker;
import java.io.IOException;
import picocli.CommandLine.Command;

/** {@code mooncake4j prefill}: a prefill worker. */
@Command(
        name = "prefill",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        usageHelpAutoWidth = true,
        description = {
            "Prefill worker: runs prompts through the model in one batched forward into its registered paged KV"
                    + " cache and WRITEs the blocks into the decode worker's cache through the transfer engine"
                    + " (push, coalesced), then notifies it. Serves POST /v1/prefill (called by decode workers),"
                    + " GET /health and GET /metrics.",
            "Prints 'READY prefill <url> segment=<host:port> ...' when it serves.",
            ""
        },
        footer = {"", "Example: mooncake4j prefill --port 8100 --model stories15M.bin --tokenizer tokenizer.bin"})
public final class PrefillCommand extends WorkerCommand {
    /** The default HTTP port. */
    public static final int DEFAULT_PORT = 8100;

    @Override
    String role() {
        return "prefill";
    }

    @Override
    int defaultPort() {
        return DEFAULT_PORT;
    }

    @Override
    Service serve(ServingModel model, KvRuntime kv, String host, int port, int threads) throws IOException {
        PrefillWorker w = PrefillWorker.start(model, kv, host, port, threads);
        return new Service(w.url(), w);
    }
}
