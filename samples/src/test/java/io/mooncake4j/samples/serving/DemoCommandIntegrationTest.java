package io.mooncake4j.samples.serving;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.mooncake4j.samples.cli.CliRun;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.cli.JavaCommand;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code demo}: three JVMs start, answer and stop, leaving no process behind. */
@Tag("integration")
class DemoCommandIntegrationTest {

    private static List<String> modelArgs() {
        return TestModels.modelsDir().isPresent() ? List.of()
                : TestModels.tinyRandom().asArguments();
    }

    /**
     * The JVMs below {@code root}. By executable, not by arguments: Linux gives ProcessHandle no
     * arguments for a command line as long as the demo's class path.
     */
    private static List<ProcessHandle> workerJvms(ProcessHandle root) {
        return root.descendants()
                .filter(p -> p.info().command().map(c -> c.endsWith("/java")).orElse(false))
                .toList();
    }

    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void shouldStartAnswerAndStopThreeJvms() {
        List<String> args = new ArrayList<>(List.of("demo", "--max_tokens", "24", "--prompt", "Once upon a time",
                "--prompt", "Lily and Ben went to the park"));
        args.addAll(modelArgs());
        CliRun r = CliRun.run(args.toArray(new String[0]));
        assertEquals(Main.OK, r.exitCode, r.toString());
        if (TestModels.modelsDir().isPresent()) {
            assertTrue(r.out.contains("[1] Once upon a time, there was a little girl named Lily."), r.out);
        }
        assertTrue(r.out.contains("[2] Lily and Ben went to the park"), r.out);
        for (String column : new String[] {"TTFT ms", "TPOT ms", "KV bytes", "KV xfer ms"}) {
            assertTrue(r.out.contains(column), column + "\n" + r.out);
        }
        assertTrue(r.out.contains("KV cache over tcp"), r.out);
        assertTrue(r.out.contains("all 3 JVMs stopped"), r.out);
        assertEquals(List.of(), workerJvms(ProcessHandle.current()), "orphan JVMs");
    }

    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void shouldStopItsJvmsWhenTheDemoIsInterrupted() throws Exception {
        List<String> cmd = JavaCommand.current();
        cmd.add(Main.class.getName());
        cmd.addAll(List.of("demo", "--max_tokens", "4", "--prompt", "Once upon a time", "--serve"));
        cmd.addAll(modelArgs());
        java.nio.file.Path err = java.nio.file.Files.createTempFile("demo-interrupted", ".err");
        Process demo = new ProcessBuilder(cmd).redirectError(err.toFile()).start();
        List<ProcessHandle> workers;
        try (BufferedReader out = new BufferedReader(new InputStreamReader(demo.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = out.readLine()) != null && !line.startsWith("serving until Ctrl-C")) {
                // wait until the demo serves
            }
            workers = workerJvms(demo.toHandle());
            if (line == null) {
                fail("the demo ended before serving (exit " + demo.waitFor() + "); its stderr:\n"
                        + java.nio.file.Files.readString(err));
            }
            assertEquals(3, workers.size(), "router, prefill and decode JVMs: " + workers);
            demo.destroy(); // SIGTERM, as Ctrl-C
            assertTrue(demo.waitFor(60, TimeUnit.SECONDS), "the demo did not exit");
        } finally {
            demo.destroyForcibly();
            java.nio.file.Files.deleteIfExists(err);
        }
        for (ProcessHandle w : workers) {
            w.onExit().get(30, TimeUnit.SECONDS);
            assertFalse(w.isAlive(), "orphan " + w.pid());
        }
    }
}
