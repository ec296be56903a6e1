package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.samples.NetnsHosts;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A verified transfer between two "hosts" with their own addresses ({@link NetnsHosts}): the target
 * engine on 10.77.0.2, the initiator on 10.77.0.1, each in its own JVM. Skipped where network
 * namespaces cannot be made (not root).
 */
@Tag("integration")
class TwoHostsBenchTest {
    private static NetnsHosts hosts;

    @BeforeAll
    static void hosts() throws Exception {
        hosts = NetnsHosts.tryCreate("mc4jb");
        assumeTrue(hosts != null, "cannot create network namespaces here (needs root and iproute2)");
    }

    @AfterAll
    static void teardown() throws Exception {
        if (hosts != null) {
            hosts.close();
        }
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void shouldWriteReadAndVerifyAcrossTwoHosts(@TempDir Path dir) throws Exception {
        Path segmentFile = dir.resolve("segment");
        Process target = new ProcessBuilder(hosts.java('b', "bench", "--mode=target", "--protocol=tcp",
                "--local_server_name=" + NetnsHosts.B, "--buffer_size=8M", "--segment_file=" + segmentFile,
                "--exit_on_stdin_close"))
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        try {
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!(Files.exists(segmentFile) && Files.size(segmentFile) > 0) && System.nanoTime() < end) {
                assertTrue(target.isAlive(), "the target exited early");
                TimeUnit.MILLISECONDS.sleep(100);
            }
            String segment = Files.readString(segmentFile, StandardCharsets.UTF_8).trim();
            assertTrue(segment.startsWith(NetnsHosts.B + ":"), segment);
            Process initiator = new ProcessBuilder(hosts.java('a', "bench", "--protocol=tcp",
                    "--local_server_name=" + NetnsHosts.A, "--segment_id=" + segment, "--operation=write",
                    "--block_size=64K", "--batch_size=16", "--threads=2", "--buffer_size=8M", "--duration=1",
                    "--verify"))
                    .redirectErrorStream(true)
                    .start();
            String out = new String(initiator.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(initiator.waitFor(60, TimeUnit.SECONDS), out);
            assertEquals(0, initiator.exitValue(), out);
            assertTrue(out.contains("Verify: OK"), out);
            assertTrue(out.contains("Test completed:"), out);
        } finally {
            target.getOutputStream().close();
            if (!target.waitFor(10, TimeUnit.SECONDS)) {
                target.destroyForcibly();
            }
        }
    }
}
