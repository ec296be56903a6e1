package io.mooncake4j.samples.bench;

import java.math.BigDecimal;
import java.math.RoundingMode;

/**
 * The lines the bench prints, in {@code transfer_engine_bench}'s exact format so that results
 * compare line for line and scripts written for Mooncake parse ours.
 */
public final class BenchReport {
    private BenchReport() {}

    /**
     * Mooncake's closing line, e.g. {@code Test completed: duration 10.01, batch count 4895,
     * throughput 0.26 GB/s}.
     *
     * @param seconds the wall time from starting the workers to joining them
     * @param batches batches completed by every thread together
     * @param bytes bytes moved ({@code batches * batch_size * block_size})
     * @param precision digits after the point in the throughput ({@code --report_precision})
     */
    public static String closingLine(double seconds, long batches, long bytes, ReportUnit unit, int precision) {
        return "Test completed: duration " + fixed(seconds, 2) + ", batch count " + batches
                + ", throughput " + rate(bytes, seconds, unit, precision);
    }

    /** A rate as Mooncake's {@code calculateRate} writes it: {@code 0.26 GB/s}. */
    public static String rate(long bytes, double seconds, ReportUnit unit, int precision) {
        return fixed(throughput(bytes, seconds, unit), precision) + " " + unit.name() + "/s";
    }

    /** Bytes per second in {@code unit}, computed in Mooncake's order (bytes / seconds / unit). */
    public static double throughput(long bytes, double seconds, ReportUnit unit) {
        return seconds > 0 ? 1.0 * bytes / seconds / unit.bytes() : 0;
    }

    /**
     * {@code value} with {@code digits} after the point, rounded as C++'s {@code std::fixed <<
     * setprecision} does: the exact binary value, ties to even (so 0.125 gives 0.12 and 1.005 gives
     * 1.00, where {@code String.format} would give 0.13 and 1.01).
     */
    public static String fixed(double value, int digits) {
        if (Double.isNaN(value) || Double.isInfinite(value)) {
            return Double.isNaN(value) ? "nan" : value > 0 ? "inf" : "-inf";
        }
        return new BigDecimal(value).setScale(digits, RoundingMode.HALF_EVEN).toPlainString();
    }
}
