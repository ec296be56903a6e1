package io.mooncake4j.samples.serving;

import com.google.gson.JsonObject;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.EngineOptions;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.serving.http.CompletionClient;
import io.mooncake4j.samples.serving.http.CompletionRequest;
import io.mooncake4j.samples.serving.http.CompletionResult;
import io.mooncake4j.samples.serving.model.ModelSpec;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code mooncake4j demo}: PD disaggregation end to end on one host. Starts a prefill worker, a
 * decode worker and a router as three JVMs on loopback (KV cache over the transfer engine,
 * MOONCAKE_PROTOCOL, default tcp, with P2P handshake), sends the prompts through the router's
 * OpenAI-style API with streaming, prints the stories as they are generated and a table of time to
 * first token, time per output token and KV transfer per request, then stops the JVMs.
 */
@Command(
        name = "demo",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        usageHelpAutoWidth = true,
        description = {
            "PD-disaggregated serving demo: starts a router, a prefill worker and a decode worker as three JVMs on"
                    + " loopback, streams a few stories through the router's POST /v1/completions, prints them and a"
                    + " table of TTFT, TPOT and KV transfer time and bytes per request, then shuts everything down.",
            "The KV cache moves from prefill to decode through the transfer engine (MOONCAKE_PROTOCOL, default tcp;"
                    + " P2PHANDSHAKE metadata).",
            ""
        },
        footer = {
            "",
            "Examples:",
            "  mooncake4j demo",
            "  mooncake4j demo --prompt 'Tom had a red kite' --max_tokens 200",
            "  mooncake4j demo --random_model 32,8,128 --max_tokens 16     (no checkpoint: KV of 256 KiB per token)",
            "  mooncake4j demo --serve      (keep the servers up afterwards; Ctrl-C stops them)"
        })
public final class DemoCommand implements Callable<Integer> {
    /** TinyStories-like openings. */
    public static final List<String> DEFAULT_PROMPTS =
            List.of("Once upon a time", "One day, a little dog", "Lily and Ben went to the park");

    @Spec CommandSpec spec;

    @Mixin ModelOptions modelOptions = new ModelOptions();

    @Option(names = "--prompt", paramLabel = "TEXT", description = "Prompt(s); repeat for several. Default: "
            + "'Once upon a time', 'One day, a little dog', 'Lily and Ben went to the park'.")
    List<String> prompts = new ArrayList<>();

    @Option(names = "--max_tokens", paramLabel = "N", description = "Tokens to generate per story. Default: 128.")
    int maxTokens = 128;

    @Option(names = "--temperature", paramLabel = "T", description = "0 is greedy. Default: 0.")
    float temperature = 0f;

    @Option(names = "--serve", description = "Keep the three JVMs serving after the demo, until Ctrl-C.")
    boolean serve;

    @Option(names = "--verbose", description = "Copy the JVMs' logs to stderr.")
    boolean verbose;

    @Option(names = "--log_dir", paramLabel = "DIR", description = "Where the JVMs' logs go. Default: a temporary folder.")
    Path logDir;

    @Mixin EngineOptions engineOptions = new EngineOptions();

    @Mixin WorkerOptions workerOptions = new WorkerOptions();

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (maxTokens < 1) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--max_tokens must be >= 1");
        }
        List<String> ps = prompts.isEmpty() ? DEFAULT_PROMPTS : prompts;
        ModelSpec model = modelOptions.resolve();
        Path logs = logDir != null ? Files.createDirectories(logDir) : Files.createTempDirectory("mooncake4j-demo-");
        List<String> workerArgs = new ArrayList<>(engineOptions.asArguments());
        workerArgs.addAll(workerOptions.asArguments());
        out.println("Mooncake4j PD-disaggregation demo");
        out.println("model: " + model.describe());
        if (model.isRandom()) {
            out.println("NOTE: no checkpoint, so this is a seeded RANDOM model: its stories are gibberish, but its KV"
                    + " cache has a real model's size. Pass --model FILE --tokenizer FILE for real text.");
        }
        out.flush();
        err.println("demo: starting the prefill, decode and router JVMs (logs in " + logs + ") ...");
        err.flush();
        long t0 = System.nanoTime();
        LocalCluster cluster = LocalCluster.start(model, workerArgs, true, logs, verbose ? System.err : null);
        try {
            CompletionClient health = new CompletionClient(cluster.routerUrl(), Duration.ofSeconds(10));
            JsonObject h = health.getJson("/health");
            String protocol = protocolOf(h);
            out.printf(Locale.ROOT, "router %s -> prefill %s, decode %s; KV cache over %s (%.1f s to start 3 JVMs)%n%n",
                    cluster.routerUrl(), cluster.prefillUrl(), cluster.decodeUrl(), protocol, (System.nanoTime() - t0) / 1e9);
            out.flush();
            CompletionClient client = new CompletionClient(cluster.routerUrl(), Duration.ofMinutes(10));
            // One unreported request first, so that the table shows steady state rather than the
            // JIT compiler and the first TCP connections between the workers.
            try {
                client.complete(CompletionRequest.body(null, ps.get(0), 4, 0, false));
            } catch (CompletionClient.CompletionException e) {
                throw new CommandFailure("the warm-up request failed: " + e.getMessage() + logTails(cluster), e);
            }
            List<CompletionResult> results = new ArrayList<>();
            for (int i = 0; i < ps.size(); i++) {
                String prompt = ps.get(i);
                out.print("[" + (i + 1) + "] " + prompt);
                out.flush();
                JsonObject body = CompletionRequest.body(null, prompt, maxTokens, temperature, true);
                boolean[] newline = {false};
                try {
                    results.add(client.stream(body, (text, id) -> {
                        out.print(text);
                        out.flush();
                        if (!text.isEmpty()) {
                            newline[0] = text.endsWith("\n");
                        }
                    }));
                } catch (CompletionClient.CompletionException e) {
                    throw new CommandFailure("request " + (i + 1) + " failed: " + e.getMessage() + logTails(cluster), e);
                }
                out.print(newline[0] ? "\n" : "\n\n");
            }
            printTable(out, ps, results, protocol);
            out.println("(after one unreported warm-up request; the first request of a fresh JVM also pays for JIT"
                    + " compilation and the first connections)");
            if (serve) {
                out.println();
                out.println("serving until Ctrl-C; try:");
                out.println("  curl -s " + cluster.routerUrl() + "/v1/completions -H 'Content-Type: application/json' -d"
                        + " '{\"prompt\": \"Once upon a time\", \"max_tokens\": 64, \"temperature\": 0}'");
                out.println("  bin/mooncake4j loadgen --url " + cluster.routerUrl() + " --concurrency 4 --requests 32");
                out.flush();
                new CountDownLatch(1).await();
            }
            err.println("demo: stopping the JVMs ...");
            err.flush();
            cluster.close();
            long alive = cluster.children().stream().filter(ChildJvm::isAlive).count();
            out.println();
            out.println(alive == 0 ? "all 3 JVMs stopped" : alive + " JVM(s) still running!");
            out.flush();
            return alive == 0 ? Main.OK : Main.FAILURE;
        } finally {
            cluster.close();
        }
    }

    private static String protocolOf(JsonObject health) {
        try {
            return health.getAsJsonArray("decode").get(0).getAsJsonObject().get("protocol").getAsString();
        } catch (RuntimeException e) {
            return "?";
        }
    }

    private static String logTails(LocalCluster cluster) {
        StringBuilder sb = new StringBuilder();
        for (ChildJvm c : cluster.children()) {
            sb.append("\n--- ").append(c.name()).append(" (").append(c.log()).append("):\n").append(c.output());
        }
        return sb.toString();
    }

    static void printTable(PrintWriter out, List<String> prompts, List<CompletionResult> results, String protocol) {
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"#", "prompt", "tokens in/out", "TTFT ms", "TPOT ms", "E2E ms", "prefill ms",
            "KV bytes", "KV xfer ms", "KV reqs", "KV GB/s"});
        for (int i = 0; i < results.size(); i++) {
            CompletionResult r = results.get(i);
            String p = prompts.get(i);
            rows.add(new String[] {
                Integer.toString(i + 1),
                p.length() > 24 ? p.substring(0, 21) + "..." : p,
                r.promptTokens() + "/" + r.completionTokens(),
                Table.num(r.ttftMillis()),
                Table.num(r.tpotMillis()),
                Table.num(r.e2eMillis()),
                Table.num(r.serverNumber("prefill_ms")),
                Table.bytes(r.serverNumber("kv_bytes")),
                Table.num(r.serverNumber("kv_transfer_ms")),
                Table.num(r.serverNumber("kv_requests")).replaceAll("\\.0+$", ""),
                Table.num(r.serverNumber("kv_gb_per_s"))
            });
        }
        Table.print(out, rows, 2);
        out.println("TTFT/TPOT/E2E measured by this client through the router; prefill = model time on the prefill"
                + " worker; KV = the prompt's KV cache WRITten by prefill into decode's paged cache over " + protocol
                + " (KV reqs = engine requests after coalescing: layers x K/V x runs of blocks).");
        out.flush();
    }
}
