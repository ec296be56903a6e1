package io.mooncake4j.samples.serving;

import io.mooncake4j.djl.serving.KvRuntime;
import io.mooncake4j.samples.serving.model.ServingModel;
import io.mooncake4j.samples.serving.worker.DecodeWorker;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code mooncake4j decode}: a decode worker. */
@Command(
        name = "decode",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        usageHelpAutoWidth = true,
        description = {
            "Decode worker: serves OpenAI-style POST /v1/completions. For each request it allocates KV blocks in its"
                    + " registered paged cache, asks a prefill worker to compute the prompt and push its KV cache"
                    + " into them through the transfer engine, then generates the rest one token per step,"
                    + " streaming (Server-Sent Events) if asked. Also GET /health, /v1/models, /metrics.",
            "Prints 'READY decode <url> segment=<host:port> ...' when it serves.",
            ""
        },
        footer = {"", "Example: mooncake4j decode --port 8200 --prefill http://10.0.0.1:8100"})
public final class DecodeCommand extends WorkerCommand {
    /** The default HTTP port. */
    public static final int DEFAULT_PORT = 8200;

    @Option(names = "--prefill", paramLabel = "URL", required = true,
            description = "Prefill worker(s) to use, round robin: the only URLs this worker calls (a request cannot"
                    + " name another). Repeat or separate with commas.", split = ",")
    List<String> prefill = new ArrayList<>();

    @Option(names = "--request_timeout", paramLabel = "SECONDS",
            description = "Longest a prefill call may take. Default: 300.")
    long requestTimeout = 300;

    @Override
    String role() {
        return "decode";
    }

    @Override
    int defaultPort() {
        return DEFAULT_PORT;
    }

    @Override
    Service serve(ServingModel model, KvRuntime kv, String host, int port, int threads) throws IOException {
        DecodeWorker w = DecodeWorker.start(model, kv, host, port, threads, prefill,
                Duration.ofSeconds(requestTimeout));
        return new Service(w.url(), w);
    }
}
