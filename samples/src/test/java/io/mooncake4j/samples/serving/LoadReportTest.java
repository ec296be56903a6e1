package io.mooncake4j.samples.serving;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.samples.serving.http.CompletionResult;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class LoadReportTest {
    @Test
    void shouldTakePercentilesByNearestRank() {
        double[] v = new double[100];
        for (int i = 0; i < 100; i++) {
            v[i] = 100 - i; // 1..100, unsorted
        }
        assertEquals(50, LoadReport.percentile(v, 0.5));
        assertEquals(90, LoadReport.percentile(v, 0.9));
        assertEquals(99, LoadReport.percentile(v, 0.99));
        assertEquals(100, LoadReport.percentile(v, 1.0));
        assertEquals(7, LoadReport.percentile(new double[] {7}, 0.99));
        assertEquals(3, LoadReport.percentile(new double[] {Double.NaN, 3}, 0.5));
        assertTrue(Double.isNaN(LoadReport.percentile(new double[0], 0.5)));
    }

    @Test
    void shouldReportThroughputAndTimings() {
        List<CompletionResult> rs = new ArrayList<>();
        for (int i = 1; i <= 4; i++) {
            long ms = 1_000_000L;
            // sent at 0, first token at 10*i ms, last at 10*i + 9 ms (10 tokens: TPOT 1 ms), end at +1 ms
            rs.add(new CompletionResult("x", null, null, 5, 10, "length", 0, 10 * i * ms, (10 * i + 9) * ms,
                    (10 * i + 10) * ms, null));
        }
        LoadReport r = new LoadReport(rs, List.of("request 9: HTTP 503"), 2_000_000_000L);
        assertEquals(2.0, r.requestsPerSecond(), 1e-9);
        assertEquals(40, r.outputTokens());
        assertEquals(20.0, r.outputTokensPerSecond(), 1e-9);
        assertEquals(20.0, LoadReport.percentile(r.values(CompletionResult::ttftMillis), 0.5), 1e-9);
        assertEquals(1.0, LoadReport.percentile(r.values(CompletionResult::tpotMillis), 0.99), 1e-9);
        StringWriter sw = new StringWriter();
        r.print(new PrintWriter(sw));
        String s = sw.toString();
        assertTrue(s.contains("completed 4, failed 1"), s);
        assertTrue(s.contains("p50") && s.contains("p90") && s.contains("p99"), s);
        assertTrue(s.contains("TTFT (ms)") && s.contains("TPOT (ms)") && s.contains("E2E latency (ms)"), s);
        assertTrue(s.contains("HTTP 503"), s);
    }
}
