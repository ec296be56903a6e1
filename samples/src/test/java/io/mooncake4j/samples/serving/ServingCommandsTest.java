package io.mooncake4j.samples.serving;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.samples.cli.CliRun;
import io.mooncake4j.samples.cli.Main;
import org.junit.jupiter.api.Test;

class ServingCommandsTest {
    @Test
    void shouldListAndHelpEveryServingCommand() {
        CliRun top = CliRun.run("--help");
        for (String cmd : new String[] {"demo", "generate", "loadgen", "router", "prefill", "decode"}) {
            assertTrue(top.out.contains("  " + cmd + " "), cmd + " missing from\n" + top.out);
            CliRun r = CliRun.run(cmd, "--help");
            assertEquals(Main.OK, r.exitCode, r.toString());
            assertTrue(r.out.contains("Usage: mooncake4j " + cmd), r.toString());
        }
    }

    @Test
    void shouldRefuseBadFlagsAsUsageErrors() {
        assertEquals(Main.USAGE, CliRun.run("router", "--port", "1").exitCode, "--prefill and --decode are required");
        assertEquals(Main.USAGE, CliRun.run("loadgen", "--concurrency", "0").exitCode);
        assertEquals(Main.USAGE, CliRun.run("generate", "--model", "/nonexistent.bin").exitCode);
        assertEquals(Main.USAGE, CliRun.run("generate", "--random_model", "3,2").exitCode);
        assertEquals(Main.USAGE, CliRun.run("demo", "--max_tokens", "0").exitCode);
    }
}
