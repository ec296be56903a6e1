package io.mooncake4j.samples.serving;

import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.serving.worker.Router;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code mooncake4j router}: the OpenAI-style front end of prefill and decode workers. */
@Command(
        name = "router",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        usageHelpAutoWidth = true,
        description = {
            "Router: serves OpenAI-style POST /v1/completions ({\"model\", \"prompt\", \"max_tokens\", \"temperature\","
                    + " \"stream\"}; streams Server-Sent Events ending 'data: [DONE]'), GET /v1/models and GET"
                    + " /health. Each request goes to the least busy decode worker, which gets its KV cache from one"
                    + " of the prefill workers it was started with (decode --prefill). Loads no model.",
            "Prints 'READY router <url>' when it serves.",
            ""
        },
        footer = {
            "",
            "Example:",
            "  mooncake4j router --prefill http://10.0.0.1:8100 --decode http://10.0.0.2:8200 --port 8000",
            "  curl -s localhost:8000/v1/completions -d '{\"prompt\": \"Once upon a time\", \"max_tokens\": 64,"
                    + " \"temperature\": 0}'"
        })
public final class RouterCommand implements Callable<Integer> {
    /** The default HTTP port. */
    public static final int DEFAULT_PORT = 8000;

    @Spec CommandSpec spec;

    @Mixin ServerOptions serverOptions = new ServerOptions();

    @Option(names = "--prefill", paramLabel = "URL", split = ",",
            description = "Prefill worker URL(s) that /health checks (the decode workers choose the prefill worker)."
                    + " Repeat or separate with commas.")
    List<String> prefill = new ArrayList<>();

    @Option(names = "--decode", paramLabel = "URL", required = true, split = ",",
            description = "Decode worker URL(s). Repeat or separate with commas.")
    List<String> decode = new ArrayList<>();

    @Option(names = "--request_timeout", paramLabel = "SECONDS", description = "Longest a request may take. Default: 600.")
    long requestTimeout = 600;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        Router router;
        try {
            router = Router.start(serverOptions.host, serverOptions.port(DEFAULT_PORT), serverOptions.httpThreads,
                    prefill, decode, Duration.ofSeconds(requestTimeout));
        } catch (IOException e) {
            throw new CommandFailure("router: cannot listen on " + serverOptions.host + ":"
                    + serverOptions.port(DEFAULT_PORT) + ": " + e.getMessage(), e);
        }
        err.println("router: prefill " + prefill + ", decode " + decode);
        err.flush();
        out.println(ChildJvm.READY + "router " + router.url());
        out.flush();
        serverOptions.serveUntilStopped(err, router::close);
        return Main.OK;
    }
}
