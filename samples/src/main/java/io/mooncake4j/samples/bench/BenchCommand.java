package io.mooncake4j.samples.bench;

import io.mooncake4j.Opcode;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.EngineOptions;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.cli.Sizes;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
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
 * {@code mooncake4j bench}: Mooncake's {@code transfer_engine_bench} for Mooncake4j, with the same
 * flags ({@code --flag=value} or {@code --flag value}) and the same closing line, so figures compare
 * line for line; plus {@code --verify}, {@code --sweep} and script helpers.
 */
@Command(
        name = "bench",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        abbreviateSynopsis = true,
        usageHelpAutoWidth = true,
        description = {
            "Throughput benchmark with the flags and output of Mooncake's transfer_engine_bench.",
            "With --use_vram the buffers are GPU memory (cuda:N) on either side.",
            "A target registers --buffer_size bytes and prints its segment name; an initiator opens that"
                    + " segment and, on --threads threads, submits batches of --batch_size requests of"
                    + " --block_size bytes (READ or WRITE) and waits for each, for --duration seconds. The last"
                    + " line is Mooncake's: 'Test completed: duration D, batch count N, throughput X GB/s'.",
            ""
        },
        footer = {
            "",
            "Examples:",
            "  mooncake4j bench --mode=target --segment_file=/tmp/seg &",
            "  mooncake4j bench --segment_id=$(cat /tmp/seg) --operation=write --verify",
            "  mooncake4j bench --segment_id=10.0.0.2:15123 --sweep --chart=sweep.svg",
            "  scripts/bench-loopback.sh --duration=5 --verify   (both on this host)",
            "",
            "Sizes take K, M, G (powers of 1024) or KB, MB, GB (powers of 1000). Exit codes: 0 ok, 1 failure"
                    + " (a request did not complete, verification mismatch), 2 usage error."
        })
public final class BenchCommand implements Callable<Integer> {
    /** Progress lines are printed for timed runs longer than this, unless --progress says otherwise. */
    static final double PROGRESS_AFTER_SECONDS = 3;

    @Spec CommandSpec spec;

    @Mixin EngineOptions engineOptions = new EngineOptions();

    @Option(names = "--mode", paramLabel = "initiator|target", converter = ModeConverter.class,
            description = "initiator: run the benchmark against --segment_id; target: serve a buffer. Default: initiator.")
    Mode mode = Mode.INITIATOR;

    @Option(names = "--segment_id", paramLabel = "HOST:PORT|self",
            description = "The target's segment name, as the target printed it (initiator and --verify). 'self':"
                    + " no target; the initiator also allocates --buffer_size as the target buffer and moves blocks"
                    + " within its own segment (the engine copies on the submitting thread): the same-process figure.")
    String segmentId;

    /** The {@code --segment_id} that makes the initiator its own target. */
    static final String SELF = "self";

    @Option(names = "--operation", paramLabel = "read|write", converter = OperationConverter.class,
            description = "READ pulls the target's blocks, WRITE pushes into them. Default: read.")
    Opcode operation = Opcode.READ;

    @Option(names = "--duration", paramLabel = "SECONDS",
            description = "Length of the timed run. 0 with --verify: verify only. Default: 10.")
    double duration = 10;

    @Option(names = "--warmup_duration", paramLabel = "SECONDS",
            description = "Before the timed run, the same loop for this long, not reported, so that JIT compilation"
                    + " and connection set-up (which a C++ bench does not pay) stay out of short runs. Default: 0.")
    double warmupDuration;

    @Option(names = "--threads", paramLabel = "N",
            description = "Submitting threads. Default: 12, Mooncake's, so figures compare; fewer can be faster"
                    + " on small hosts.")
    int threads = 12;

    @Option(names = "--block_size", paramLabel = "BYTES", converter = Sizes.Converter.class,
            description = "Bytes per request. Default: 65536.")
    long blockSize = 65536;

    @Option(names = "--batch_size", paramLabel = "N", description = "Requests per batch. Default: 128.")
    int batchSize = 128;

    @Option(names = "--buffer_size", paramLabel = "BYTES", converter = Sizes.Converter.class,
            description = "Registered buffer, allocated with engine.allocate (page aligned). If threads x batch_size"
                    + " blocks do not fit, blocks are reused (Mooncake enlarges the buffer instead). Default: 1G.")
    long bufferSize = 1L << 30;

    @Option(names = "--report_unit", paramLabel = "UNIT", converter = ReportUnit.Converter.class,
            description = "GB|GiB|Gb|MB|MiB|Mb|KB|KiB|Kb (GB = 1e9 bytes, Gb = 1e9 bits; case matters). Default: GB.")
    ReportUnit reportUnit = ReportUnit.GB;

    @Option(names = "--report_precision", paramLabel = "DIGITS",
            description = "Digits after the point in the throughput. Default: 2.")
    int reportPrecision = 2;

    @Option(names = "--use_vram", arity = "0..1", paramLabel = "BOOL",
            description = "Buffers (and --verify's areas) in GPU memory, on the initiator and the target"
                    + " (--mode=target): needs mooncake4j-gpu-cuda with JCuda (bin/mooncake4j carries both) and the"
                    + " NVIDIA driver. Default: false (Mooncake's CUDA builds default to true).")
    boolean useVram;

    @Option(names = "--gpu_id", paramLabel = "ID",
            description = "GPU of the --use_vram buffer; -1: one --buffer_size buffer on every GPU, thread t using"
                    + " buffer t % GPUs (Mooncake's). Ignored without --use_vram. Default: 0.")
    int gpuId;

    @Option(names = "--init_mem", arity = "0..1", paramLabel = "BOOL",
            description = "Fill the buffer with 0xCC before use (as Mooncake does for GPU memory), which also"
                    + " faults its pages in outside the timed run. Default: true.")
    boolean initMem = true;

    @Option(names = "--verify", arity = "0..1", paramLabel = "BOOL",
            description = "After the timed run (or instead of it with --duration=0): WRITE a pattern new to this run"
                    + " into the target's blocks (the ones the run uses, up to --verify_bytes), READ them back into"
                    + " a separate area and compare every byte; a mismatch fails the run. Needs only the"
                    + " protocol from the target, so it works against Mooncake targets too.")
    boolean verify;

    @Option(names = "--verify_bytes", paramLabel = "BYTES", converter = Sizes.Converter.class,
            description = "Most bytes --verify writes and reads back. Default: 256M.")
    long verifyBytes = VerifyPhase.DEFAULT_MAX_BYTES;

    @Option(names = "--seed", paramLabel = "N", converter = SeedConverter.class,
            description = "Seed of the --verify pattern (decimal or 0x hex), to repeat a run. Default: random.")
    Long seed;

    @Option(names = "--sweep", arity = "0..1", paramLabel = "BOOL",
            description = "Instead of one timed run: every --sweep_block_sizes x --sweep_threads x (read, write),"
                    + " --sweep_duration each; prints a table, and --csv / --chart files.")
    boolean sweep;

    @Option(names = "--sweep_duration", paramLabel = "SECONDS", description = "Seconds per sweep point. Default: 1.")
    double sweepDuration = 1;

    @Option(names = "--sweep_block_sizes", paramLabel = "SIZE", split = ",", converter = Sizes.Converter.class,
            defaultValue = "4K,16K,64K,256K,1M,4M", description = "Default: ${DEFAULT-VALUE}.")
    List<Long> sweepBlockSizes;

    @Option(names = "--sweep_threads", paramLabel = "N", split = ",", defaultValue = "1,2,3,4",
            description = "Default: ${DEFAULT-VALUE}.")
    List<Integer> sweepThreads;

    @Option(names = "--csv", paramLabel = "FILE", description = "Write the sweep results as CSV.")
    Path csv;

    @Option(names = "--chart", paramLabel = "FILE.svg", description = "Write the sweep results as an SVG chart.")
    Path chart;

    @Option(names = "--progress", arity = "0..1", paramLabel = "BOOL",
            description = "A line per second on stderr. Default: for runs longer than 3 s.")
    Boolean progress;

    @Option(names = "--segment_file", paramLabel = "FILE",
            description = "Target: also write the segment name to FILE (atomically; removed on exit), for scripts"
                    + " that start the target in the background and wait for the file.")
    Path segmentFile;

    @Option(names = "--target_duration", paramLabel = "SECONDS",
            description = "Target: stop after this long. Default: 0, run until killed.")
    double targetDuration;

    @Option(names = "--exit_on_stdin_close", arity = "0..1", paramLabel = "BOOL",
            description = "Target: stop when standard input reaches end of file (for a parent that holds a pipe).")
    boolean exitOnStdinClose;

    /** {@code --mode}. */
    public enum Mode {
        INITIATOR,
        TARGET
    }

    @Override
    public Integer call() {
        validate();
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (mode == Mode.TARGET) {
            TransferEngine engine = engineOptions.createEngine();
            BenchMemory memory;
            try {
                memory = allocate(engine);
            } catch (RuntimeException e) {
                engine.close();
                throw e;
            }
            return TargetRunner.run(engine, memory, segmentFile, targetDuration, exitOnStdinClose, out, err);
        }
        boolean self = isSelf();
        try (TransferEngine engine = engineOptions.createEngine();
                BenchMemory local = allocate(engine);
                BenchMemory own = self ? allocate(engine) : null) {
            Segment segment = engine.openSegment(self ? engine.localSegmentName() : segmentId);
            // same process: only the second set of buffers is the target (the segment shows both)
            List<BufferDescriptor> remote = self ? own.asTarget() : segment.buffers();
            if (sweep) {
                runSweep(engine, segment, remote, local, out, err);
            }
            ThroughputLoop.Result result = null;
            BlockLayout layout = null;
            if ((!sweep && duration > 0) || verify) {
                layout = BlockLayout.of(blockSize, batchSize, threads, local.addresses(), local.length(), remote);
                out.println(header(engine, segment, layout, local));
                out.flush();
                if (layout.wrapNote() != null) {
                    err.println(layout.wrapNote());
                }
            }
            if (!sweep && duration > 0 && warmupDuration > 0) {
                new ThroughputLoop(engine, segment, layout, operation).run(warmupDuration, null, reportUnit);
            }
            long cpu0 = processCpuNanos();
            if (!sweep && duration > 0) {
                boolean showProgress = progress != null ? progress : duration > PROGRESS_AFTER_SECONDS;
                result = new ThroughputLoop(engine, segment, layout, operation)
                        .run(duration, showProgress ? err : null, reportUnit);
            }
            long cpu = processCpuNanos() - cpu0;
            if (verify) {
                VerifyPattern pattern = new VerifyPattern(seed != null ? seed : new SecureRandom().nextLong());
                VerifyPhase.Result v = new VerifyPhase(engine, segment, layout, pattern, local.locations().get(0))
                        .run(verifyBytes);
                if (!v.ok()) {
                    throw new CommandFailure("verify FAILED (seed 0x" + Long.toHexString(v.seed()) + "): "
                            + v.mismatch());
                }
                out.println(VerifyPhase.okLine(v));
            }
            if (result != null) {
                if (cpu0 >= 0) {
                    out.println(cpuLine(result, cpu));
                }
                out.println(statsLine(result));
                // Mooncake's closing line, always the last line.
                out.println(BenchReport.closingLine(result.seconds(), result.batches(), result.bytes(), reportUnit,
                        reportPrecision));
            }
            out.flush();
            return Main.OK;
        }
    }

    private BenchMemory allocate(TransferEngine engine) {
        return BenchMemory.allocate(engine, bufferSize, useVram, gpuId, initMem);
    }

    private boolean isSelf() {
        return segmentId != null && segmentId.trim().equalsIgnoreCase(SELF);
    }

    private void runSweep(TransferEngine engine, Segment segment, List<BufferDescriptor> remote, BenchMemory local,
            PrintWriter out, PrintWriter err) {
        engine.warmupSegment(segment.name());
        List<ThroughputLoop.Result> points = new ArrayList<>();
        SweepReport report = new SweepReport(points, reportUnit, reportPrecision);
        int total = sweepBlockSizes.size() * sweepThreads.size() * 2;
        out.println("Sweep: segment_id " + segment.name() + ", protocol " + engine.protocol() + ", batch_size "
                + batchSize + ", " + BenchReport.fixed(sweepDuration, 1) + " s per point, " + total + " points");
        out.flush();
        long start = System.nanoTime();
        int n = 0;
        for (long block : sweepBlockSizes) {
            for (int t : sweepThreads) {
                for (Opcode op : new Opcode[] {Opcode.READ, Opcode.WRITE}) {
                    n++;
                    BlockLayout layout;
                    try {
                        layout = BlockLayout.of(block, batchSize, t, local.addresses(), local.length(), remote);
                    } catch (CommandFailure e) {
                        err.println("sweep " + n + "/" + total + ": skipped: " + e.getMessage());
                        continue;
                    }
                    ThroughputLoop.Result r = new ThroughputLoop(engine, segment, layout, op)
                            .run(sweepDuration, null, reportUnit);
                    points.add(r);
                    err.println("sweep " + n + "/" + total + ": " + report.row(r).trim().replaceAll(" +", " "));
                    err.flush();
                }
            }
        }
        SweepReport done = new SweepReport(points, reportUnit, reportPrecision);
        done.table().forEach(out::println);
        String title = "mooncake4j bench --sweep: " + engine.protocol() + ", batch_size " + batchSize + ", "
                + BenchReport.fixed(sweepDuration, 1) + " s per point";
        try {
            if (csv != null) {
                done.writeCsv(csv);
                out.println("Wrote " + csv);
            }
            if (chart != null) {
                done.writeSvg(chart, title);
                out.println("Wrote " + chart);
            }
        } catch (IOException e) {
            throw new CommandFailure("cannot write the sweep results: " + e, e);
        }
        out.println("Sweep completed: " + points.size() + " points in "
                + BenchReport.fixed((System.nanoTime() - start) / 1e9, 2) + " s");
        out.flush();
    }

    private String header(TransferEngine engine, Segment segment, BlockLayout layout, BenchMemory local) {
        return "Initiator: segment_id " + segment.name() + (segment.isLocal() ? " (self: same-process copies)" : "")
                + ", protocol " + engine.protocol() + ", operation "
                + operation.name().toLowerCase(Locale.ROOT) + ", block_size " + blockSize + ", batch_size "
                + batchSize + ", threads " + threads + ", duration "
                + (sweep || duration == 0 ? "none (verify only)" : BenchReport.fixed(duration, 2) + " s") + ", buffer_size "
                + bufferSize + " (" + layout.blocks() + " blocks, " + layout.remoteBuffers() + " remote buffer"
                + (layout.remoteBuffers() == 1 ? "" : "s") + ")" + (useVram ? ", use_vram: " + local.describe() : "");
    }

    /** CPU time of this process (every thread, JIT and GC included), or -1 where the JVM cannot tell. */
    static long processCpuNanos() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            return os.getProcessCpuTime();
        }
        return -1;
    }

    /**
     * What the timed run cost this process in CPU: on a host where both ends share the cores, bytes
     * per CPU-second (with the target's, which scripts/bench-baselines.sh adds) is what throughput
     * becomes when nothing else runs.
     */
    static String cpuLine(ThroughputLoop.Result r, long cpuNanos) {
        double cpu = cpuNanos / 1e9;
        return "CPU: initiator process " + BenchReport.fixed(cpu, 2) + " s in the timed run ("
                + BenchReport.fixed(r.seconds() > 0 ? cpu / r.seconds() : 0, 2) + " cores), "
                + BenchReport.fixed(r.requests() > 0 ? cpuNanos / (double) r.requests() : 0, 0) + " ns per request";
    }

    /** The line printed just before Mooncake's closing line. */
    static String statsLine(ThroughputLoop.Result r) {
        return "Requests: " + r.requests() + " completed, " + BenchReport.fixed(r.requestsPerSecond(), 0)
                + " req/s; batch latency mean " + BenchReport.fixed(r.meanBatchMillis(), 3) + " ms, max "
                + BenchReport.fixed(r.maxBatchMillis(), 3) + " ms";
    }

    private void validate() {
        CommandLine cl = spec.commandLine();
        if (gpuId < BenchMemory.EVERY_GPU) {
            throw new ParameterException(cl, "--gpu_id must be a GPU number or -1 (every GPU), not " + gpuId);
        }
        positive("--threads", threads);
        positive("--batch_size", batchSize);
        positive("--block_size", blockSize);
        positive("--buffer_size", bufferSize);
        if (threads > 4096) {
            throw new ParameterException(cl, "--threads=" + threads + " is more than 4096");
        }
        if (reportPrecision < 0 || reportPrecision > 12) {
            throw new ParameterException(cl, "--report_precision must be 0..12, not " + reportPrecision);
        }
        if (!(duration >= 0) || duration > 1e6) {
            throw new ParameterException(cl, "--duration must be a number of seconds >= 0, not " + duration);
        }
        if (!(warmupDuration >= 0) || warmupDuration > 1e6) {
            throw new ParameterException(cl, "--warmup_duration must be a number of seconds >= 0, not " + warmupDuration);
        }
        if (!(targetDuration >= 0)) {
            throw new ParameterException(cl, "--target_duration must be >= 0, not " + targetDuration);
        }
        if (mode == Mode.TARGET) {
            return;
        }
        if (segmentId == null || segmentId.isBlank()) {
            throw new ParameterException(cl, "--segment_id is required with --mode=initiator: pass the segment name"
                    + " the target printed (host:port), e.g. --segment_id=10.0.0.2:15123");
        }
        if (blockSize > bufferSize) {
            throw new ParameterException(cl, "--block_size=" + blockSize + " is larger than --buffer_size="
                    + bufferSize);
        }
        if (duration == 0 && !verify && !sweep) {
            throw new ParameterException(cl, "--duration=0 only makes sense with --verify (verify without a timed run)");
        }
        if ((csv != null || chart != null) && !sweep) {
            throw new ParameterException(cl, "--csv and --chart write --sweep results: add --sweep");
        }
        if (sweep) {
            if (!(sweepDuration > 0)) {
                throw new ParameterException(cl, "--sweep_duration must be positive, not " + sweepDuration);
            }
            for (long b : sweepBlockSizes) {
                positive("--sweep_block_sizes", b);
            }
            for (int t : sweepThreads) {
                positive("--sweep_threads", t);
            }
        }
    }

    private void positive(String name, long value) {
        if (value <= 0) {
            throw new ParameterException(spec.commandLine(), name + " must be positive, not " + value);
        }
    }

    /** {@code initiator} or {@code target}, any case. */
    static final class ModeConverter implements CommandLine.ITypeConverter<Mode> {
        @Override
        public Mode convert(String value) {
            switch (value.trim().toLowerCase(Locale.ROOT)) {
                case "initiator":
                    return Mode.INITIATOR;
                case "target":
                    return Mode.TARGET;
                default:
                    throw new CommandLine.TypeConversionException(
                            "'" + value + "' is not a mode: use initiator or target");
            }
        }
    }

    /** {@code read} or {@code write}, any case. */
    static final class OperationConverter implements CommandLine.ITypeConverter<Opcode> {
        @Override
        public Opcode convert(String value) {
            switch (value.trim().toLowerCase(Locale.ROOT)) {
                case "read":
                    return Opcode.READ;
                case "write":
                    return Opcode.WRITE;
                default:
                    throw new CommandLine.TypeConversionException(
                            "'" + value + "' is not an operation: use read or write");
            }
        }
    }

    /** A 64-bit seed in decimal or {@code 0x} hex. */
    static final class SeedConverter implements CommandLine.ITypeConverter<Long> {
        @Override
        public Long convert(String value) {
            String v = value.trim();
            try {
                if (v.startsWith("0x") || v.startsWith("0X")) {
                    return Long.parseUnsignedLong(v.substring(2), 16);
                }
                return Long.parseLong(v);
            } catch (NumberFormatException e) {
                throw new CommandLine.TypeConversionException("'" + value + "' is not a seed: use a decimal or 0x hex number");
            }
        }
    }
}
