package io.mooncake4j.samples.serving;

import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.Main;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code mooncake4j loadgen}: concurrent completions against a router, with latency percentiles. */
@Command(
        name = "loadgen",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        usageHelpAutoWidth = true,
        description = {
            "Load generator for POST /v1/completions (a router's or a decode worker's): keeps --concurrency requests in"
                    + " flight until --requests have ended, then prints throughput and the p50/p90/p99 of time to"
                    + " first token (TTFT), time per output token (TPOT), end-to-end latency and the KV transfer.",
            ""
        },
        footer = {"", "Example: mooncake4j loadgen --url http://127.0.0.1:8000 --concurrency 8 --requests 64 --max_tokens 64"})
public final class LoadgenCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Option(names = "--url", paramLabel = "URL", description = "The router. Default: http://127.0.0.1:8000.")
    String url = "http://127.0.0.1:" + RouterCommand.DEFAULT_PORT;

    @Option(names = "--concurrency", paramLabel = "C", description = "Requests in flight. Default: 4.")
    int concurrency = 4;

    @Option(names = "--requests", paramLabel = "N", description = "Requests in all. Default: 32.")
    int requests = 32;

    @Option(names = "--max_tokens", paramLabel = "N", description = "Tokens to generate per request. Default: 64.")
    int maxTokens = 64;

    @Option(names = "--temperature", paramLabel = "T", description = "Default: 0 (greedy).")
    float temperature = 0f;

    @Option(names = "--prompt", paramLabel = "TEXT",
            description = "Prompt(s), used in turn. Repeat for several. Default: the demo's prompts.")
    List<String> prompts = new ArrayList<>();

    @Option(names = "--stream", arity = "0..1", paramLabel = "BOOL", fallbackValue = "true",
            description = "Stream the answers (TTFT is measured at the first token). Default: true.")
    boolean stream = true;

    @Option(names = "--served_model", paramLabel = "NAME", description = "The 'model' field to send. Default: none.")
    String model;

    @Option(names = "--request_timeout", paramLabel = "SECONDS", description = "Per request. Default: 600.")
    long timeout = 600;

    @Override
    public Integer call() throws Exception {
        if (concurrency < 1 || requests < 1 || maxTokens < 1) {
            throw new ParameterException(spec.commandLine(), "--concurrency, --requests and --max_tokens must be >= 1");
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        List<String> p = prompts.isEmpty() ? DemoCommand.DEFAULT_PROMPTS : prompts;
        LoadGenerator gen = new LoadGenerator(url, p, maxTokens, temperature, stream, model, Duration.ofSeconds(timeout));
        out.printf(Locale.ROOT, "loadgen: %d requests to %s, concurrency %d, max_tokens %d, temperature %s, %s%n",
                requests, url, concurrency, maxTokens, temperature, stream ? "streaming" : "not streaming");
        out.flush();
        int step = Math.max(1, requests / 10);
        LoadReport report = gen.run(requests, concurrency, done -> {
            if (done % step == 0 || done == requests) {
                synchronized (err) {
                    err.printf(Locale.ROOT, "  %d/%d done%n", done, requests);
                    err.flush();
                }
            }
        });
        report.print(out);
        if (report.results().isEmpty()) {
            throw new CommandFailure("every request failed; first: " + report.errors().get(0));
        }
        return report.errors().isEmpty() ? Main.OK : Main.FAILURE;
    }
}
