package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A verified transfer between two "hosts" with their own addresses: network namespaces joined by a
 * veth pair ({@code scripts/netns-hosts.sh}), the target engine on 10.77.0.2 and the initiator on
 * 10.77.0.1, each in its own JVM. Skipped where namespaces cannot be made (not root).
 */
@Tag("integration")
class TwoHostsBenchTest {
    private static final String NAME = "mc4j" + (ProcessHandle.current().pid() % 100000);
    private static final Path SCRIPT = repoRoot().resolve("scripts/netns-hosts.sh");
    private static boolean up;

    private static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("scripts/netns-hosts.sh"))) {
            p = p.getParent();
        }
        return p == null ? Path.of("") : p;
    }

    private static int run(List<String> command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        p.getInputStream().transferTo(System.err);
        return p.waitFor(30, TimeUnit.SECONDS) ? p.exitValue() : -1;
    }

    @BeforeAll
    static void hosts() throws Exception {
        assumeTrue(Files.exists(SCRIPT), "scripts/netns-hosts.sh not found");
        assumeTrue(new File("/usr/sbin/ip").canExecute() || new File("/sbin/ip").canExecute()
                || new File("/usr/bin/ip").canExecute(), "iproute2 is not installed");
        run(List.of("bash", SCRIPT.toString(), "down", NAME));
        up = run(List.of("bash", SCRIPT.toString(), "up", NAME)) == 0;
        assumeTrue(up, "cannot create network namespaces here (needs root / CAP_NET_ADMIN)");
    }

    @AfterAll
    static void teardown() throws Exception {
        if (up) {
            run(List.of("bash", SCRIPT.toString(), "down", NAME));
        }
    }

    private static List<String> javaIn(String namespace, String... args) {
        List<String> c = new ArrayList<>(List.of("ip", "netns", "exec", namespace,
                ProcessHandle.current().info().command().orElse("java"), "-Xmx256m",
                "-cp", System.getProperty("java.class.path"), "io.mooncake4j.samples.cli.Main"));
        c.addAll(List.of(args));
        return c;
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void shouldWriteReadAndVerifyAcrossTwoHosts(@TempDir Path dir) throws Exception {
        Path segmentFile = dir.resolve("segment");
        Process target = new ProcessBuilder(javaIn(NAME + "b", "bench", "--mode=target", "--protocol=tcp",
                "--local_server_name=10.77.0.2", "--buffer_size=8M", "--segment_file=" + segmentFile,
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
            assertTrue(segment.startsWith("10.77.0.2:"), segment);
            Process initiator = new ProcessBuilder(javaIn(NAME + "a", "bench", "--protocol=tcp",
                    "--local_server_name=10.77.0.1", "--segment_id=" + segment, "--operation=write",
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
