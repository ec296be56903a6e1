package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.samples.cli.CliRun;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code bench --segment_id=self}: same-process copies through the command line, verified. */
class SelfSegmentBenchCommandTest {
    @Test
    @Timeout(60)
    void shouldRunAndVerifyAgainstItsOwnSegment() {
        CliRun r = CliRun.run("bench", "--segment_id=self", "--protocol=tcp", "--local_server_name=127.0.0.1",
                "--operation=write", "--block_size=64K", "--batch_size=8", "--threads=2",
                "--buffer_size=4M", "--duration=1", "--verify");
        assertEquals(0, r.exitCode, r.toString());
        assertTrue(r.out.contains("Verify: OK"), r.toString());
        assertTrue(r.lastLine().matches("Test completed: duration \\d+\\.\\d\\d, batch count \\d+, throughput \\d+\\.\\d\\d GB/s"),
                r.lastLine());
    }
}
