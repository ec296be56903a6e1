package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.Opcode;
import io.mooncake4j.samples.cli.CliRun;
import io.mooncake4j.samples.cli.Main;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** Flags as Mooncake's users type them; bad values are usage errors (exit 2) that say what to do. */
class BenchFlagsTest {
    private static BenchCommand parse(String... args) {
        List<String> all = new ArrayList<>();
        all.add("bench");
        all.addAll(List.of(args));
        CommandLine cl = Main.commandLine(new PrintWriter(new StringWriter()), new PrintWriter(new StringWriter()));
        CommandLine.ParseResult pr = cl.parseArgs(all.toArray(new String[0]));
        return (BenchCommand) pr.subcommand().commandSpec().userObject();
    }

    @Test
    void shouldUseMooncakeDefaults() {
        BenchCommand b = parse();
        assertEquals(BenchCommand.Mode.INITIATOR, b.mode);
        assertEquals(Opcode.READ, b.operation);
        assertEquals(10, b.duration);
        assertEquals(12, b.threads);
        assertEquals(65536, b.blockSize);
        assertEquals(128, b.batchSize);
        assertEquals(1L << 30, b.bufferSize);
        assertEquals(ReportUnit.GB, b.reportUnit);
        assertEquals(2, b.reportPrecision);
        assertTrue(b.initMem);
        assertFalse(b.useVram);
        assertFalse(b.verify);
        assertNull(b.segmentId);
    }

    @Test
    void shouldAcceptFlagEqualsValue() {
        BenchCommand b = parse("--mode=target", "--operation=write", "--duration=3", "--threads=4",
                "--block_size=1048576", "--batch_size=32", "--buffer_size=4M", "--report_unit=GiB",
                "--segment_id=10.0.0.2:15123", "--protocol=tcp", "--metadata_server=P2PHANDSHAKE");
        assertEquals(BenchCommand.Mode.TARGET, b.mode);
        assertEquals(Opcode.WRITE, b.operation);
        assertEquals(3, b.duration);
        assertEquals(4, b.threads);
        assertEquals(1 << 20, b.blockSize);
        assertEquals(32, b.batchSize);
        assertEquals(4 << 20, b.bufferSize);
        assertEquals(ReportUnit.GiB, b.reportUnit);
        assertEquals("10.0.0.2:15123", b.segmentId);
    }

    @Test
    void shouldAcceptFlagSpaceValue() {
        BenchCommand b = parse("--mode", "target", "--operation", "write", "--duration", "3", "--threads", "4",
                "--block_size", "1M", "--batch_size", "32", "--buffer_size", "4194304", "--report_unit", "Gb",
                "--segment_id", "10.0.0.2:15123");
        assertEquals(BenchCommand.Mode.TARGET, b.mode);
        assertEquals(Opcode.WRITE, b.operation);
        assertEquals(4, b.threads);
        assertEquals(1 << 20, b.blockSize);
        assertEquals(4 << 20, b.bufferSize);
        assertEquals(ReportUnit.Gb, b.reportUnit);
        assertEquals("10.0.0.2:15123", b.segmentId);
    }

    @Test
    void shouldAcceptBooleansAsGflagsDoes() {
        assertTrue(parse("--verify").verify);
        assertTrue(parse("--verify=true").verify);
        assertFalse(parse("--verify=false").verify);
        assertFalse(parse("--init_mem=false").initMem);
        assertFalse(parse("--init_mem", "false").initMem);
        assertFalse(parse("--use_vram=false").useVram);
        assertTrue(parse("--auto_discovery", "--sweep").sweep);
        assertNull(parse().progress);
        assertTrue(parse("--progress").progress);
        assertFalse(parse("--progress=false").progress);
    }

    @Test
    void shouldLetALaterFlagWinAsGflagsDoes() {
        assertEquals(5, parse("--threads=2", "--threads=5").threads);
    }

    @Test
    void shouldReadModeAndOperationInAnyCase() {
        assertEquals(BenchCommand.Mode.TARGET, parse("--mode=Target").mode);
        assertEquals(Opcode.WRITE, parse("--operation=WRITE").operation);
    }

    @Test
    void shouldReadSweepListsAndSeeds() {
        BenchCommand b = parse("--sweep", "--sweep_block_sizes=4K,1M", "--sweep_threads=1,8", "--seed=0xffffffffffffffff");
        assertEquals(List.of(4096L, 1L << 20), b.sweepBlockSizes);
        assertEquals(List.of(1, 8), b.sweepThreads);
        assertEquals(-1L, b.seed);
        BenchCommand d = parse();
        assertEquals(List.of(4096L, 16384L, 65536L, 262144L, 1L << 20, 4L << 20), d.sweepBlockSizes);
        assertEquals(List.of(1, 2, 3, 4), d.sweepThreads);
    }

    @Test
    void shouldAcceptEveryReportUnitExactlyAsWritten() {
        for (ReportUnit u : ReportUnit.values()) {
            assertEquals(u, parse("--report_unit=" + u.name()).reportUnit);
        }
    }

    private static CliRun usageError(String... args) {
        List<String> all = new ArrayList<>();
        all.add("bench");
        all.addAll(List.of(args));
        CliRun r = CliRun.run(all.toArray(new String[0]));
        assertEquals(Main.USAGE, r.exitCode, r.toString());
        assertTrue(r.err.contains("mooncake4j bench --help"), r.toString());
        assertEquals("", r.out, r.toString());
        return r;
    }

    @Test
    void shouldRejectBadValuesWithAUsageErrorThatSaysWhatToDo() {
        assertTrue(usageError("--report_unit=gb").err.contains("GB|GiB|Gb|MB|MiB|Mb|KB|KiB|Kb"));
        assertTrue(usageError("--block_size=64X").err.contains("'64X' is not a size"));
        assertTrue(usageError("--mode=server").err.contains("use initiator or target"));
        assertTrue(usageError("--operation=copy").err.contains("use read or write"));
        assertTrue(usageError("--threads=many").err.contains("--threads"));
        assertTrue(usageError("--threads=0", "--segment_id=h:1").err.contains("--threads must be positive"));
        assertTrue(usageError("--duration=-1", "--segment_id=h:1").err.contains("--duration"));
        assertTrue(usageError("--block_size=2M", "--buffer_size=1M", "--segment_id=h:1").err.contains("larger than"));
        assertTrue(usageError("--csv=x.csv", "--segment_id=h:1").err.contains("--sweep"));
        assertTrue(usageError("--duration=0", "--segment_id=h:1").err.contains("--verify"));
        assertTrue(usageError("--blocksize=4096").err.contains("--block_size"));
    }

    @Test
    void shouldRequireASegmentIdForTheInitiator() {
        assertTrue(usageError().err.contains("--segment_id is required"));
    }

    @Test
    void shouldTakeMooncakesGpuFlags() {
        BenchCommand b = parse("--use_vram", "--gpu_id=-1");
        assertTrue(b.useVram);
        assertEquals(-1, b.gpuId);
        assertEquals(0, parse().gpuId);
        assertTrue(usageError("--use_vram", "--gpu_id=-2", "--segment_id=h:1").err
                .contains("--gpu_id must be a GPU number or -1 (every GPU), not -2"));
    }

    @Test
    void shouldSayWhatIsMissingWhenUseVramFindsNoGpu() {
        for (String[] args : new String[][] {{"bench", "--use_vram", "--segment_id=self", "--buffer_size=1M",
            "--duration=1"}, {"bench", "--mode=target", "--use_vram", "--buffer_size=1M", "--target_duration=1"}}) {
            CliRun r = CliRun.run(args);
            assertEquals(Main.FAILURE, r.exitCode, r.toString());
            assertTrue(r.err.contains("cannot allocate --buffer_size=1048576 with --use_vram --gpu_id=0:"), r.err);
            assertTrue(r.err.contains("memory location cuda:0 cannot be used"), r.err);
            assertTrue(r.err.contains("NVIDIA driver (libcuda.so.1) and a GPU are present"), r.err);
        }
    }

    @Test
    void shouldRejectProbeMisuse() {
        CliRun r = CliRun.run("probe");
        assertEquals(Main.USAGE, r.exitCode, r.toString());
        assertTrue(r.err.contains("--spawn_target"), r.err);
        r = CliRun.run("probe", "--spawn_target", "--segment_id=h:1");
        assertEquals(Main.USAGE, r.exitCode, r.toString());
        r = CliRun.run("probe", "--segment_id=h:1", "--warmup=maybe");
        assertEquals(Main.USAGE, r.exitCode, r.toString());
    }
}
