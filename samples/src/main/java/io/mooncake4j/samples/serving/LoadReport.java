package io.mooncake4j.samples.serving;

import io.mooncake4j.samples.serving.http.CompletionResult;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;

/**
 * The figures of a load run: percentiles (nearest rank) of time to first token, time per output
 * token and end-to-end latency, the server-side KV transfer figures, and throughput.
 *
 * @param results the completed requests
 * @param errors the failures' messages
 * @param wallNanos the run's duration
 */
public record LoadReport(List<CompletionResult> results, List<String> errors, long wallNanos) {

    /** The {@code q}-quantile (0..1) of {@code values} by nearest rank; NaN when empty. */
    public static double percentile(double[] values, double q) {
        double[] v = Arrays.stream(values).filter(x -> !Double.isNaN(x)).sorted().toArray();
        if (v.length == 0) {
            return Double.NaN;
        }
        int rank = (int) Math.ceil(q * v.length);
        return v[Math.max(0, Math.min(v.length - 1, rank - 1))];
    }

    /** One metric over the completed requests. */
    public double[] values(ToDoubleFunction<CompletionResult> f) {
        return results.stream().mapToDouble(f).toArray();
    }

    /** Requests completed per second. */
    public double requestsPerSecond() {
        return results.size() / (wallNanos / 1e9);
    }

    /** Generated tokens in all. */
    public long outputTokens() {
        return results.stream().mapToLong(CompletionResult::completionTokens).sum();
    }

    /** Generated tokens per second. */
    public double outputTokensPerSecond() {
        return outputTokens() / (wallNanos / 1e9);
    }

    /** Prints the summary and the percentile table. */
    public void print(PrintWriter out) {
        out.printf(Locale.ROOT, "completed %d, failed %d in %.2f s: %.2f req/s, %.1f output tok/s (%d tokens)%n",
                results.size(), errors.size(), wallNanos / 1e9, requestsPerSecond(), outputTokensPerSecond(),
                outputTokens());
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"metric", "p50", "p90", "p99", "mean", "max"});
        rows.add(row("TTFT (ms)", values(CompletionResult::ttftMillis)));
        rows.add(row("TPOT (ms)", values(CompletionResult::tpotMillis)));
        rows.add(row("E2E latency (ms)", values(CompletionResult::e2eMillis)));
        rows.add(row("KV transfer (ms)", values(r -> r.serverNumber("kv_transfer_ms"))));
        rows.add(row("KV wait (ms)", values(r -> r.serverNumber("kv_wait_ms"))));
        rows.add(row("KV bytes", values(r -> r.serverNumber("kv_bytes")), Table::bytes));
        Table.print(out, rows);
        if (!errors.isEmpty()) {
            out.println("first errors:");
            errors.stream().limit(5).forEach(e -> out.println("  " + e));
        }
        out.flush();
    }

    private static String[] row(String name, double[] v) {
        return row(name, v, Table::num);
    }

    private static String[] row(String name, double[] v, java.util.function.DoubleFunction<String> f) {
        double mean = Arrays.stream(v).filter(x -> !Double.isNaN(x)).average().orElse(Double.NaN);
        double max = Arrays.stream(v).filter(x -> !Double.isNaN(x)).max().orElse(Double.NaN);
        return new String[] {name, f.apply(percentile(v, 0.5)), f.apply(percentile(v, 0.9)),
            f.apply(percentile(v, 0.99)), f.apply(mean), f.apply(max)};
    }
}
