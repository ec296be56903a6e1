package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.samples.cli.CliRun;
import io.mooncake4j.samples.cli.Main;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Smoke runs between two processes over tcp: a target in a child JVM (this JVM's java and class
 * path), the initiator here. Tiny sizes: these check that the tools work, not how fast.
 */
@Tag("integration")
class TwoProcessBenchTest {
    private static final String CLOSING =
            "Test completed: duration \\d+\\.\\d{2}, batch count \\d+, throughput \\d+\\.\\d{2} GB/s";
    private static ChildTarget target;

    @BeforeAll
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    static void startTarget() {
        target = ChildTarget.start(List.of("--protocol=tcp", "--local_server_name=127.0.0.1", "--buffer_size=4M",
                "--init_mem=false"), Duration.ofSeconds(60));
    }

    @AfterAll
    static void stopTarget() {
        if (target != null) {
            target.close();
        }
    }

    private static CliRun bench(String... more) {
        List<String> args = new java.util.ArrayList<>(List.of("bench", "--protocol=tcp",
                "--local_server_name=127.0.0.1", "--segment_id=" + target.segmentId(), "--buffer_size=4M",
                "--threads=2", "--batch_size=8", "--duration=1"));
        args.addAll(List.of(more));
        return CliRun.run(args.toArray(new String[0]));
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldReadVerifyAndEndWithMooncakesClosingLine() {
        CliRun r = bench("--verify");
        assertEquals(Main.OK, r.exitCode, r.toString());
        assertTrue(r.lastLine().matches(CLOSING), r.toString());
        assertTrue(r.out.contains("Verify: OK"), r.toString());
        assertTrue(r.out.contains("req/s"), r.toString());
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldWriteOneMegabyteBlocksAndVerify() {
        CliRun r = bench("--operation=write", "--block_size=1M", "--verify", "--report_unit=GB");
        assertEquals(Main.OK, r.exitCode, r.toString());
        assertTrue(r.lastLine().matches(CLOSING), r.toString());
        assertTrue(r.out.contains("Verify: OK, 4 blocks (4 MiB)"), r.toString());
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldVerifyWithoutATimedRun() {
        CliRun r = bench("--duration=0", "--verify", "--block_size=4K");
        assertEquals(Main.OK, r.exitCode, r.toString());
        assertTrue(r.lastLine().startsWith("Verify: OK, 16 blocks"), r.toString());
        assertFalse(r.out.contains("Test completed"), r.toString());
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldSweepAndWriteTheTable() {
        CliRun r = bench("--sweep", "--sweep_duration=0.1", "--sweep_block_sizes=4K,64K", "--sweep_threads=1,2");
        assertEquals(Main.OK, r.exitCode, r.toString());
        assertTrue(r.out.contains("Sweep completed: 8 points"), r.toString());
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldFailWithExitOneWhenTheTargetIsGone() {
        CliRun r = CliRun.run("bench", "--protocol=tcp", "--local_server_name=127.0.0.1", "--segment_id=127.0.0.1:1",
                "--duration=1", "--buffer_size=4M");
        assertEquals(Main.FAILURE, r.exitCode, r.toString());
        assertTrue(r.err.contains("127.0.0.1:1"), r.toString());
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void shouldProbeASpawnedTargetWithAndWithoutWarmup() {
        CliRun r = CliRun.run("probe", "--spawn_target", "--protocol=tcp", "--local_server_name=127.0.0.1",
                "--buffer_size=4M", "--iters=3", "--jvm_warmup=false");
        assertEquals(Main.OK, r.exitCode, r.toString());
        assertTrue(r.out.contains("warmup=OFF") && r.out.contains("warmup=ON"), r.toString());
        assertTrue(r.out.contains("openSegment:") && r.out.contains("submit #2:"), r.toString());
        assertTrue(r.lastLine().startsWith("Summary:"), r.toString());
    }

    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void shouldStopTheTargetCleanlyWhenItsStdinCloses() throws Exception {
        ChildTarget t = ChildTarget.start(List.of("--protocol=tcp", "--local_server_name=127.0.0.1",
                "--buffer_size=1M", "--init_mem=false"), Duration.ofSeconds(60));
        Process p = t.process();
        t.close();
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue());
    }
}
