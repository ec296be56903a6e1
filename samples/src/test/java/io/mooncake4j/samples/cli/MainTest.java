package io.mooncake4j.samples.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class MainTest {
    @Test
    void shouldPrintHelpAndExitZeroForEveryCommand() {
        for (String[] args : new String[][] {{"--help"}, {"bench", "--help"}, {"probe", "--help"}, {"help", "bench"}}) {
            CliRun r = CliRun.run(args);
            assertEquals(Main.OK, r.exitCode, r.toString());
            assertTrue(r.out.contains("Usage: mooncake4j"), r.toString());
        }
    }

    @Test
    void shouldListTheCommandsInTopLevelHelp() {
        CliRun r = CliRun.run("--help");
        assertTrue(r.out.contains("bench"), r.out);
        assertTrue(r.out.contains("probe"), r.out);
    }

    @Test
    void shouldExitWithUsageErrorWithoutACommand() {
        CliRun r = CliRun.run();
        assertEquals(Main.USAGE, r.exitCode, r.toString());
        assertTrue(r.err.contains("Usage: mooncake4j"), r.toString());
    }

    @Test
    void shouldExitWithUsageErrorForAnUnknownCommand() {
        CliRun r = CliRun.run("benchh");
        assertEquals(Main.USAGE, r.exitCode, r.toString());
        assertTrue(r.err.contains("benchh"), r.toString());
        assertTrue(r.err.contains("bench"), r.toString());
    }

    @Test
    void shouldPrintTheVersionFromEveryCommand() {
        for (String[] args : new String[][] {{"--version"}, {"bench", "-V"}, {"probe", "--version"}}) {
            CliRun r = CliRun.run(args);
            assertEquals(Main.OK, r.exitCode, r.toString());
            assertTrue(r.out.startsWith("mooncake4j "), r.toString());
        }
    }

    @Test
    void shouldKeepTheDocumentedExitCodes() {
        assertEquals(0, Main.OK);
        assertEquals(1, Main.FAILURE);
        assertEquals(2, Main.USAGE);
    }
}
