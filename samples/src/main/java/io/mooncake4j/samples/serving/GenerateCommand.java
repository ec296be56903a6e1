package io.mooncake4j.samples.serving;

import com.google.gson.JsonObject;
import io.mooncake4j.djl.llama.Generation;
import io.mooncake4j.djl.llama.Sampler;
import io.mooncake4j.djl.llama.Tokenizer;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.EngineOptions;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.serving.http.CompletionClient;
import io.mooncake4j.samples.serving.http.CompletionResult;
import io.mooncake4j.samples.serving.model.ModelSpec;
import io.mooncake4j.samples.serving.model.ServingModel;
import io.mooncake4j.samples.serving.model.TokenText;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code mooncake4j generate}: llama2.c's {@code run} in Java. Standard output is byte for byte what
 * {@code run M -z T -t TEMP -n STEPS -i PROMPT} prints there; {@code achieved tok/s} and everything
 * else go to standard error. With {@code --disaggregated} the prompt is prefilled in one JVM and
 * decoded in another, the KV cache moved between them by the transfer engine; the output is the
 * same.
 */
@Command(
        name = "generate",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        usageHelpAutoWidth = true,
        description = {
            "Generates text as llama2.c's run does (same flags: -n steps counts positions, the prompt's included;"
                    + " -t 0 is greedy), printing exactly what run prints to stdout.",
            "--disaggregated runs the prefill and the decode in two worker JVMs, the KV cache moved by the"
                    + " transfer engine (MOONCAKE_PROTOCOL, default tcp); stdout is identical.",
            ""
        },
        footer = {
            "",
            "Examples:",
            "  mooncake4j generate --prompt 'Once upon a time' --steps 64 --temperature 0",
            "  mooncake4j generate -i 'Once upon a time' -n 64 -t 0 --disaggregated",
            "  mooncake4j generate --model stories15M.bin --tokenizer tokenizer.bin -n 256"
        })
public final class GenerateCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin ModelOptions modelOptions = new ModelOptions();

    @Option(names = {"--prompt", "-i"}, paramLabel = "TEXT", description = "The prompt. Default: none (BOS only).")
    String prompt;

    @Option(names = {"--steps", "-n"}, paramLabel = "N",
            description = "Positions to run, the prompt's included; 0 or more than the context: the context. Default: 256.")
    int steps = 256;

    @Option(names = {"--temperature", "-t"}, paramLabel = "T", description = "0 is greedy. Default: 1.0.")
    float temperature = 1.0f;

    @Option(names = {"--topp", "-p"}, paramLabel = "P", description = "Nucleus sampling probability. Default: 0.9.")
    float topp = 0.9f;

    @Option(names = {"--seed", "-s"}, paramLabel = "N", description = "Sampler seed. Default: the time.")
    long seed;

    @Option(names = "--disaggregated",
            description = "Prefill in one JVM, decode in another, the KV cache moved by the transfer engine.")
    boolean disaggregated;

    @Option(names = "--verbose", description = "With --disaggregated: copy the workers' logs to stderr.")
    boolean verbose;

    @Mixin EngineOptions engineOptions = new EngineOptions();

    @Mixin WorkerOptions workerOptions = new WorkerOptions();

    private final PrintStream stdout;

    /** Prints to the process's standard output. */
    public GenerateCommand() {
        this(System.out);
    }

    /** Prints the generated text to {@code stdout} (tests). */
    public GenerateCommand(PrintStream stdout) {
        this.stdout = stdout;
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--temperature must be >= 0");
        }
        ModelSpec modelSpec = modelOptions.resolve();
        if (modelSpec.isRandom()) {
            err.println("generate: using a " + modelSpec.describe());
            err.flush();
        }
        long s = seed > 0 ? seed : System.currentTimeMillis() / 1000;
        return disaggregated ? disaggregated(modelSpec, s, err) : colocated(modelSpec, s, err);
    }

    private int colocated(ModelSpec modelSpec, long s, PrintWriter err) throws IOException {
        ServingModel.configureDjl(workerOptions.torchThreads);
        try (ServingModel model = ServingModel.load(modelSpec)) {
            Sampler sampler = new Sampler(model.config().vocabSize(), temperature, topp, s);
            long t0 = System.nanoTime();
            Generation g = model.generator().generate(prompt, steps, sampler, stdout);
            long t1 = System.nanoTime();
            stdout.flush();
            if (g.positions() > 1) {
                err.printf(Locale.ROOT, "achieved tok/s: %f%n", (g.positions() - 1) / ((t1 - t0) / 1e9));
            }
            err.flush();
        }
        return Main.OK;
    }

    private int disaggregated(ModelSpec modelSpec, long s, PrintWriter err) throws IOException {
        Tokenizer tokenizer = ServingModel.loadTokenizer(modelSpec);
        Path logs = Files.createTempDirectory("mooncake4j-generate-");
        List<String> workerArgs = new ArrayList<>(engineOptions.asArguments());
        workerArgs.addAll(workerOptions.asArguments());
        err.println("generate: starting a prefill and a decode JVM (logs in " + logs + ")");
        err.flush();
        try (LocalCluster cluster = LocalCluster.start(modelSpec, workerArgs, false, logs, verbose ? System.err : null)) {
            JsonObject body = new JsonObject();
            body.addProperty("prompt", prompt == null ? "" : prompt);
            body.addProperty("steps", steps);
            body.addProperty("temperature", temperature);
            body.addProperty("top_p", topp > 0 && topp <= 1 ? topp : 1f);
            body.addProperty("seed", s);
            body.addProperty("return_token_ids", true);
            CompletionClient client = new CompletionClient(cluster.decodeUrl(), Duration.ofMinutes(10));
            int[] prev = {-1};
            CompletionResult r;
            try {
                r = client.stream(body, new CompletionClient.Listener() {
                    @Override
                    public void onPrompt(int[] ids) {
                        for (int i = 1; i < ids.length; i++) {
                            print(tokenizer, ids[i - 1], ids[i]);
                        }
                        prev[0] = ids.length == 0 ? -1 : ids[ids.length - 1];
                    }

                    @Override
                    public void onToken(String text, int id) {
                        if (id >= 0 && prev[0] >= 0) {
                            print(tokenizer, prev[0], id);
                            prev[0] = id;
                        }
                    }
                });
            } catch (CompletionClient.CompletionException e) {
                throw new CommandFailure("generation failed: " + e.getMessage()
                        + "\n--- prefill log:\n" + cluster.children().get(0).output()
                        + "\n--- decode log:\n" + cluster.children().get(1).output(), e);
            }
            stdout.print('\n');
            stdout.flush();
            int positions = r.promptTokens() - 1 + r.completionTokens();
            double seconds = r.e2eMillis() / 1e3;
            if (positions > 1) {
                err.printf(Locale.ROOT, "achieved tok/s: %f%n", (positions - 1) / seconds);
            }
            err.printf(Locale.ROOT, "KV cache moved by the engine (%s): %d bytes in %.3f ms, TTFT %.1f ms, TPOT %.2f ms%n",
                    str(r, "kv_protocol"), (long) r.serverNumber("kv_bytes"), r.serverNumber("kv_transfer_ms"),
                    r.ttftMillis(), r.tpotMillis());
            err.flush();
        }
        deleteLogs(logs);
        return Main.OK;
    }

    /** The workers' logs are kept only when something failed. */
    private static void deleteLogs(Path dir) {
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                Files.deleteIfExists(f);
            }
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            // a leftover temporary folder is harmless
        }
    }

    private void print(Tokenizer tokenizer, int prev, int next) {
        byte[] b = TokenText.pieceBytes(tokenizer, prev, next);
        stdout.write(b, 0, b.length);
        stdout.flush();
    }

    private static String str(CompletionResult r, String field) {
        return r.server() != null && r.server().has(field) ? r.server().get(field).getAsString() : "?";
    }
}
