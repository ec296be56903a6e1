package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class BenchReportTest {
    @Test
    void shouldPrintMooncakesClosingLine() {
        // 4895 batches of 128 x 64 KiB in 10.01 s: Mooncake's README figure.
        long bytes = 4895L * 128 * 65536;
        assertEquals("Test completed: duration 10.01, batch count 4895, throughput 4.10 GB/s",
                BenchReport.closingLine(10.01, 4895, bytes, ReportUnit.GB, 2));
        assertEquals("Test completed: duration 10.01, batch count 4895, throughput 3.82 GiB/s",
                BenchReport.closingLine(10.01, 4895, bytes, ReportUnit.GiB, 2));
        assertEquals("Test completed: duration 10.01, batch count 4895, throughput 32.82 Gb/s",
                BenchReport.closingLine(10.01, 4895, bytes, ReportUnit.Gb, 2));
    }

    @Test
    void shouldMatchTheClosingLineMooncakeScriptsParse() {
        String line = BenchReport.closingLine(3.0456, 892, 892L * 128 * 65536, ReportUnit.MB, 2);
        assertTrue(line.matches("Test completed: duration \\d+\\.\\d{2}, batch count \\d+, throughput \\d+\\.\\d{2} MB/s"),
                line);
        assertEquals("Test completed: duration 3.05, batch count 892, throughput 2456.87 MB/s", line);
    }

    @Test
    void shouldUseMooncakesUnitValues() {
        assertEquals(1e9, ReportUnit.GB.bytes());
        assertEquals(1 << 30, ReportUnit.GiB.bytes());
        assertEquals(1.25e8, ReportUnit.Gb.bytes());
        assertEquals(1e6, ReportUnit.MB.bytes());
        assertEquals(1 << 20, ReportUnit.MiB.bytes());
        assertEquals(125_000, ReportUnit.Mb.bytes());
        assertEquals(1000, ReportUnit.KB.bytes());
        assertEquals(1024, ReportUnit.KiB.bytes());
        assertEquals(125, ReportUnit.Kb.bytes());
        assertEquals("1.00 GB/s", BenchReport.rate(1_000_000_000L, 1.0, ReportUnit.GB, 2));
        assertEquals("8.000 Gb/s", BenchReport.rate(1_000_000_000L, 1.0, ReportUnit.Gb, 3));
    }

    @Test
    void shouldRoundAsCppFixedDoes() {
        // std::fixed rounds the exact binary value, ties to even; String.format would print 0.13, 1.01, 2.68.
        assertEquals("0.12", BenchReport.fixed(0.125, 2));
        assertEquals("0.38", BenchReport.fixed(0.375, 2));
        assertEquals("1.00", BenchReport.fixed(1.005, 2));
        assertEquals("2.67", BenchReport.fixed(2.675, 2));
        assertEquals("10.01", BenchReport.fixed(10.005000001, 2));
        assertEquals("0.00", BenchReport.fixed(0, 2));
        assertEquals("3", BenchReport.fixed(2.5000001, 0));
        assertEquals("2", BenchReport.fixed(2.5, 0));
    }

    @Test
    void shouldPrintRequestsPerSecondBeforeTheClosingLine() {
        ThroughputLoop.Result r = new ThroughputLoop.Result(io.mooncake4j.Opcode.READ, 4096, 128, 2, 2.0, 1000,
                2_000_000_000L, 5_000_000L);
        assertEquals("Requests: 128000 completed, 64000 req/s; batch latency mean 2.000 ms, max 5.000 ms",
                BenchCommand.statsLine(r));
    }
}
