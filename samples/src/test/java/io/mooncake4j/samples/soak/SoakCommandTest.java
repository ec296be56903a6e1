package io.mooncake4j.samples.soak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.samples.Transports;
import io.mooncake4j.samples.cli.CliRun;
import io.mooncake4j.samples.cli.Main;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code mooncake4j soak} against three target JVMs spread over every transport available here (tcp,
 * and efa in the {@code efa-software-provider} execution), for {@code -Dmooncake4j.soak.duration}
 * seconds (default 60; longer on demand).
 */
class SoakCommandTest {
    private static final Pattern COMPLETED = Pattern.compile(
            "Soak completed: duration [0-9.]+ s, targets (\\d+), transfers (\\d+), bytes (\\d+) \\(.*\\), failures (\\d+),"
                    + " corruption (\\d+)");

    @Test
    @Tag("integration")
    @Tag("soak")
    @Timeout(value = 30, unit = TimeUnit.MINUTES)
    void shouldMoveMixedSizesAcrossThreeTargetsWithNoFailureAndNoCorruption() {
        String seconds = System.getProperty("mooncake4j.soak.duration", "60");
        List<String> wanted = Transports.all().toList();
        List<String> available = Transports.available();
        assumeTrue(wanted.stream().anyMatch(available::contains), "none of " + wanted + " is available here");
        String protocols = String.join(",", available);
        CliRun r = CliRun.run("soak", "--duration=" + seconds, "--targets=3", "--protocol=tcp",
                "--protocols=" + protocols, "--local_server_name=127.0.0.1");
        System.err.println(r);
        assertEquals(Main.OK, r.exitCode, r.toString());
        Matcher m = COMPLETED.matcher(r.lastLine());
        assertTrue(m.matches(), r.toString());
        assertTrue(Integer.parseInt(m.group(1)) >= 3, r.lastLine());
        assertTrue(Long.parseLong(m.group(2)) > 0 && Long.parseLong(m.group(3)) > 0, r.lastLine());
        assertEquals("0", m.group(4), r.toString());
        assertEquals("0", m.group(5), r.toString());
        for (String p : protocols.split(",")) {
            assertTrue(r.out.contains(p + "="), "no " + p + " target: " + r.out);
        }
    }

    @Test
    void shouldRefuseAnEmptyDurationAndImpossibleSizes() {
        assertEquals(Main.USAGE, CliRun.run("soak", "--duration=0").exitCode);
        CliRun r = CliRun.run("soak", "--min_size=8K", "--max_size=4K");
        assertEquals(Main.USAGE, r.exitCode, r.toString());
        assertTrue(r.err.contains("--min_size"), r.toString());
    }
}
