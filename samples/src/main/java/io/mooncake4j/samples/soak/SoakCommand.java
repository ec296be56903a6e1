package io.mooncake4j.samples.soak;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.samples.bench.ChildTarget;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.EngineOptions;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.cli.Sizes;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code mooncake4j soak}: starts {@code --targets} bench targets in child JVMs (spread over every
 * transport this engine installed, or {@code --protocols}), then for {@code --duration} seconds
 * moves checksummed batches of mixed sizes to and from them ({@link SoakWorker}), and ends with
 * {@code Soak completed: ..., failures F, corruption C}; exit code 0 only when both are zero.
 */
@Command(
        name = "soak",
        mixinStandardHelpOptions = true,
        description = {
            "Soak test: WRITE batches of mixed-size requests with a pattern new to each request to several target"
                    + " processes, READ them back, compare every byte; for --duration seconds. Reports transfers,"
                    + " bytes, failures and corruption; exits 1 unless both are zero.",
            "",
            "Example: mooncake4j soak --duration=600 --targets=4 --local_server_name=127.0.0.1"
        })
public final class SoakCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin EngineOptions engineOptions = new EngineOptions();

    @Option(names = "--duration", paramLabel = "SECONDS", description = "Length of the run. Default: 60.")
    double duration = 60;

    @Option(names = "--targets", paramLabel = "N",
            description = "Target processes (at least one per protocol). Default: 3.")
    int targets = 3;

    @Option(names = "--protocols", paramLabel = "LIST", split = ",",
            description = "Protocols the targets publish, round robin, e.g. tcp,efa; this engine installs them all"
                    + " (MC_INSTALLED_TRANSPORTS). Default: every transport this engine installed.")
    List<String> protocols;

    @Option(names = "--threads", paramLabel = "N", description = "Submitting threads. Default: 2.")
    int threads = 2;

    @Option(names = "--min_size", paramLabel = "BYTES", converter = Sizes.Converter.class,
            description = "Smallest request. Default: 4K.")
    long minSize = 4096;

    @Option(names = "--max_size", paramLabel = "BYTES", converter = Sizes.Converter.class,
            description = "Largest request. Default: 4M.")
    long maxSize = 4L << 20;

    @Option(names = "--seed", paramLabel = "N", description = "Seed of sizes, offsets and patterns. Default: 1.")
    long seed = 1;

    @Override
    public Integer call() throws Exception {
        validate();
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        List<ChildTarget> children = new ArrayList<>();
        try (TransferEngine engine = TransferEngine.create(config())) {
            List<String> spread = spread(protocols != null ? protocols : engine.installedProtocols());
            String host = EngineOptions.HostPort.parse(engine.localSegmentName()).host();
            long targetLength = SoakWorker.targetLength(threads, maxSize);
            List<CompletableFuture<ChildTarget>> starting = new ArrayList<>();
            for (String p : spread) {
                starting.add(CompletableFuture.supplyAsync(() -> ChildTarget.start(List.of("--protocol=" + p,
                        "--local_server_name=" + host, "--buffer_size=" + targetLength, "--init_mem=false"),
                        Duration.ofSeconds(90))));
            }
            for (CompletableFuture<ChildTarget> f : starting) {
                children.add(join(f));
            }
            List<Segment> segments = new ArrayList<>();
            for (ChildTarget c : children) {
                segments.add(engine.openSegment(c.segmentId()));
            }
            out.println("Soak: " + children.size() + " targets " + count(spread) + ", " + threads + " threads, sizes "
                    + Sizes.format(minSize) + ".." + Sizes.format(maxSize) + ", seed " + seed + ", "
                    + duration + " s");
            out.flush();
            SoakCounters counters = run(engine, segments, err);
            for (String f : counters.firstFailures()) {
                err.println("  " + f);
            }
            for (ChildTarget c : children) {
                if (!c.process().isAlive()) {
                    err.println("target " + c.segmentId() + " exited during the run; its output:\n" + c.output());
                    counters.failed("target " + c.segmentId() + " exited");
                }
            }
            out.println(String.format(Locale.ROOT, "Soak completed: duration %.1f s, targets %d, ", duration,
                    children.size()) + counters.summary());
            out.flush();
            return counters.failures() == 0 && counters.corruption() == 0 ? Main.OK : Main.FAILURE;
        } finally {
            for (ChildTarget c : children) {
                c.close();
            }
        }
    }

    private SoakCounters run(TransferEngine engine, List<Segment> segments, PrintWriter err)
            throws InterruptedException {
        SoakCounters counters = new SoakCounters();
        long deadline = System.nanoTime() + (long) (duration * 1e9);
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            Thread w = new Thread(new SoakWorker(t, engine, segments, minSize, maxSize, seed, deadline, counters),
                    "soak-" + t);
            w.setUncaughtExceptionHandler((th, e) -> counters.failed(th.getName() + " died: " + e));
            w.start();
            workers.add(w);
        }
        long lastReport = System.nanoTime();
        for (Thread w : workers) {
            while (w.isAlive()) {
                w.join(1000);
                if (System.nanoTime() - lastReport > TimeUnit.SECONDS.toNanos(10)) {
                    lastReport = System.nanoTime();
                    err.println("soak: " + counters.summary());
                    err.flush();
                }
            }
        }
        return counters;
    }

    /**
     * The engine flags; with {@code --protocols}, also {@code MC_INSTALLED_TRANSPORTS} naming them, so
     * that a transport that is not auto-selected (efa on a software provider) is installed too.
     */
    private EngineConfig config() {
        EngineConfig.Builder b = engineOptions.builder();
        if (protocols != null) {
            b.set(EngineConfig.INSTALLED_TRANSPORTS, String.join(",", protocols));
        }
        return b.build();
    }

    private List<String> spread(List<String> available) {
        if (available.isEmpty()) {
            throw new CommandFailure("no protocol to soak: --protocols is empty");
        }
        List<String> spread = new ArrayList<>();
        for (int i = 0; i < Math.max(targets, available.size()); i++) {
            spread.add(available.get(i % available.size()).trim());
        }
        return spread;
    }

    private static Map<String, Integer> count(List<String> protocols) {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (String p : protocols) {
            m.merge(p, 1, Integer::sum);
        }
        return m;
    }

    private static ChildTarget join(CompletableFuture<ChildTarget> f) {
        try {
            return f.join();
        } catch (CompletionException e) {
            throw e.getCause() instanceof CommandFailure cf ? cf : new CommandFailure(e.getCause().toString(), e);
        }
    }

    private void validate() {
        if (!(duration > 0)) {
            throw new ParameterException(spec.commandLine(), "--duration must be > 0, got " + duration);
        }
        if (targets < 1 || threads < 1) {
            throw new ParameterException(spec.commandLine(),
                    "--targets and --threads must be at least 1, got " + targets + " and " + threads);
        }
        if (minSize < 1 || maxSize < minSize || maxSize > Integer.MAX_VALUE / (2 * SoakWorker.MAX_BATCH)) {
            throw new ParameterException(spec.commandLine(), "need 1 <= --min_size <= --max_size"
                    + " <= " + Sizes.format(Integer.MAX_VALUE / (2 * SoakWorker.MAX_BATCH)) + ", got " + minSize
                    + " and " + maxSize);
        }
    }
}
