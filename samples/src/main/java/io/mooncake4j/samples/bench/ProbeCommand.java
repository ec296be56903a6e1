package io.mooncake4j.samples.bench;

import io.mooncake4j.HostMemory;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.EngineOptions;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.cli.Sizes;
import java.io.PrintWriter;
import java.io.Writer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code mooncake4j probe}: Mooncake's {@code efa_first_submit_probe}. Times what a 10-second
 * throughput average hides: a cold {@code openSegment} and the first WRITE to a peer (connection
 * set-up), then steady-state WRITEs, once without and once with {@code warmupSegment}, each with a
 * fresh engine.
 */
@Command(
        name = "probe",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        abbreviateSynopsis = true,
        usageHelpAutoWidth = true,
        description = {
            "First-submit latency probe, as Mooncake's efa_first_submit_probe.",
            "With a fresh engine, times a cold openSegment, the first --xfer_size WRITE and --iters - 1 more"
                    + " (steady state); once without warmupSegment and once with it.",
            ""
        },
        footer = {
            "",
            "Examples:",
            "  mooncake4j probe --spawn_target      (a target in a child JVM on this host)",
            "  mooncake4j probe --segment_id=10.0.0.2:15123 --protocol=efa --iters=10",
            "",
            "Exit codes: 0 ok, 1 failure (a WRITE did not complete, the target cannot be reached), 2 usage error."
        })
public final class ProbeCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin EngineOptions engineOptions = new EngineOptions();

    @Option(names = "--segment_id", paramLabel = "HOST:PORT", description = "The target's segment name.")
    String segmentId;

    @Option(names = "--spawn_target", arity = "0..1", paramLabel = "BOOL",
            description = "Start a bench target in a child JVM (this JVM's java and class path) and probe it.")
    boolean spawnTarget;

    @Option(names = "--iters", paramLabel = "N", description = "Timed WRITEs per run, the first one cold. Default: 5.")
    int iters = 5;

    @Option(names = "--xfer_size", paramLabel = "BYTES", converter = Sizes.Converter.class,
            description = "Bytes per WRITE. Default: 1M.")
    long xferSize = 1L << 20;

    @Option(names = "--buffer_size", paramLabel = "BYTES", converter = Sizes.Converter.class,
            description = "Registered buffer on each side. Default: 64M (Mooncake's probe registers 1G; only"
                    + " --xfer_size of it is used).")
    long bufferSize = 64L << 20;

    @Option(names = "--warmup", paramLabel = "both|true|false", converter = WarmupConverter.class,
            description = "Runs to do: without warmupSegment (false), with it (true), or both. Default: both.")
    Warmup warmup = Warmup.BOTH;

    /** {@code --warmup}: which runs to do. */
    enum Warmup {
        BOTH(false, true),
        ON(true),
        OFF(false);

        private final List<Boolean> runs;

        Warmup(Boolean... runs) {
            this.runs = List.of(runs);
        }

        List<Boolean> runs() {
            return runs;
        }
    }

    /** One probe run's timings, in milliseconds. */
    record Run(boolean warmup, double engineStartMs, double openMs, double warmupMs, double[] submitMs) {
        double coldMs() {
            return openMs + (warmup ? warmupMs : 0) + submitMs[0];
        }

        double steadyMedianMs() {
            if (submitMs.length < 2) {
                return Double.NaN;
            }
            double[] s = Arrays.copyOfRange(submitMs, 1, submitMs.length);
            Arrays.sort(s);
            return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
        }
    }

    @Option(names = "--jvm_warmup", arity = "0..1", paramLabel = "BOOL",
            description = "First do unreported runs (each its own engine and connections) for --jvm_warmup_seconds,"
                    + " so that class loading and JIT compilation, which a C++ probe does not pay, stay out of the"
                    + " timings: the reported runs are a warm JVM meeting a new peer, as a long-running server"
                    + " does. The first of them (a cold JVM) is printed too. Default: true.")
    boolean jvmWarmup = true;

    @Option(names = "--jvm_warmup_seconds", paramLabel = "SECONDS",
            description = "How long --jvm_warmup runs (at least one run). Default: 2.")
    double jvmWarmupSeconds = 2;

    @Override
    public Integer call() {
        CommandLine cl = spec.commandLine();
        if (spawnTarget == (segmentId != null)) {
            throw new ParameterException(cl, "give either --segment_id=HOST:PORT (a running target) or --spawn_target");
        }
        if (!(jvmWarmupSeconds >= 0) || jvmWarmupSeconds > 3600) {
            throw new ParameterException(cl, "--jvm_warmup_seconds must be 0..3600, not " + jvmWarmupSeconds);
        }
        if (iters < 1) {
            throw new ParameterException(cl, "--iters must be at least 1, not " + iters);
        }
        if (xferSize <= 0 || bufferSize < xferSize) {
            throw new ParameterException(cl, "--xfer_size must be positive and at most --buffer_size ("
                    + xferSize + " > " + bufferSize + ")");
        }
        PrintWriter out = cl.getOut();
        ChildTarget child = null;
        try {
            String target = segmentId;
            if (spawnTarget) {
                List<String> args = new ArrayList<>(engineOptions.asArguments());
                args.add("--local_server_name=127.0.0.1");
                args.add("--buffer_size=" + bufferSize);
                args.add("--init_mem=false");
                child = ChildTarget.start(args, Duration.ofSeconds(60));
                target = child.segmentId();
                out.println("Spawned target: segment_id " + target + " (pid " + child.process().pid() + ")");
            }
            if (jvmWarmup) {
                PrintWriter none = new PrintWriter(Writer.nullWriter());
                long t0 = System.nanoTime();
                Run cold = probe(target, false, none);
                out.println(String.format(Locale.ROOT, "Cold JVM (first run in this JVM, not in the summary):"
                        + " openSegment %.2f ms, first WRITE %.2f ms, cold total %.2f ms", cold.openMs(),
                        cold.submitMs()[0], cold.coldMs()));
                int warmRuns = 1;
                long end = t0 + (long) (jvmWarmupSeconds * 1e9);
                while (System.nanoTime() < end) {
                    probe(target, false, none);
                    warmRuns++;
                }
                out.println(line("JVM warm-up", ms(t0), warmRuns + " runs, not reported: --jvm_warmup=false to skip"));
            }
            List<Run> runs = new ArrayList<>();
            for (boolean w : warmup.runs()) {
                runs.add(probe(target, w, out));
            }
            out.println(summary(runs));
            out.flush();
            return Main.OK;
        } finally {
            if (child != null) {
                child.close();
            }
        }
    }

    private Run probe(String target, boolean warmupFirst, PrintWriter out) {
        out.println(String.format(Locale.ROOT, "[probe] peer=%s protocol=%s warmup=%s iters=%d xfer_size=%d",
                target, engineOptions.protocol() == null ? "auto" : engineOptions.protocol(),
                warmupFirst ? "ON" : "OFF", iters, xferSize));
        long t0 = System.nanoTime();
        try (TransferEngine engine = engineOptions.createEngine();
                HostMemory buf = engine.allocate(bufferSize)) {
            double startMs = ms(t0);
            NativeMemory.fill(buf.address(), xferSize, 0xAB);
            t0 = System.nanoTime();
            Segment seg = engine.openSegment(target);
            double openMs = ms(t0);
            out.println(line("openSegment", openMs, "cold: handshake and descriptor fetch"));
            double warmupMs = 0;
            if (warmupFirst) {
                t0 = System.nanoTime();
                engine.warmupSegment(target);
                warmupMs = ms(t0);
                out.println(line("warmup", warmupMs, "warmupSegment"));
            }
            if (seg.buffers().isEmpty()) {
                throw new CommandFailure("segment " + target + " has no registered buffer");
            }
            BufferDescriptor remote = seg.buffers().get(0);
            if (remote.length() < xferSize) {
                throw new CommandFailure("the target's buffer (" + remote.length() + " bytes) is smaller than --xfer_size="
                        + xferSize);
            }
            double[] submits = new double[iters];
            for (int i = 0; i < iters; i++) {
                t0 = System.nanoTime();
                TransferBatch b = engine.newBatch(1).write(seg, buf.address(), remote.address(), xferSize).submit().join();
                submits[i] = ms(t0);
                TransferStatus st = b.status(0);
                if (st != TransferStatus.COMPLETED) {
                    throw new CommandFailure("submit #" + i + ": WRITE of " + xferSize + " bytes to " + target
                            + " ended " + st + (b.failureReason(0) == null ? "" : ": " + b.failureReason(0)));
                }
                out.println(line("submit #" + i, submits[i], i == 0 ? "first WRITE" : null));
                out.flush();
            }
            Run r = new Run(warmupFirst, startMs, openMs, warmupMs, submits);
            out.println(line("cold total", r.coldMs(),
                    "openSegment" + (warmupFirst ? " + warmup" : "") + " + first WRITE"));
            out.flush();
            return r;
        }
    }

    static String line(String what, double ms, String note) {
        return String.format(Locale.ROOT, "%-12s %9.2f ms%s", what + ":", ms, note == null ? "" : "   (" + note + ")");
    }

    static String summary(List<Run> runs) {
        StringBuilder sb = new StringBuilder("Summary:");
        for (Run r : runs) {
            sb.append(String.format(Locale.ROOT, " warmup=%s: openSegment %.2f ms, first WRITE %.2f ms%s, cold total"
                    + " %.2f ms, steady median %s ms;", r.warmup() ? "ON" : "OFF", r.openMs(), r.submitMs()[0],
                    r.warmup() ? String.format(Locale.ROOT, " (after warmup %.2f ms)", r.warmupMs()) : "", r.coldMs(),
                    Double.isNaN(r.steadyMedianMs()) ? "n/a" : String.format(Locale.ROOT, "%.2f", r.steadyMedianMs())));
        }
        sb.setLength(sb.length() - 1);
        return sb.toString();
    }

    private static double ms(long startNanos) {
        return (System.nanoTime() - startNanos) / 1e6;
    }

    /** {@code both}, or a boolean (true/false, on/off, 1/0). */
    static final class WarmupConverter implements CommandLine.ITypeConverter<Warmup> {
        @Override
        public Warmup convert(String value) {
            switch (value.trim().toLowerCase(Locale.ROOT)) {
                case "both":
                    return Warmup.BOTH;
                case "true":
                case "on":
                case "1":
                    return Warmup.ON;
                case "false":
                case "off":
                case "0":
                    return Warmup.OFF;
                default:
                    throw new CommandLine.TypeConversionException(
                            "'" + value + "' is not a --warmup choice: use both, true or false");
            }
        }
    }
}
