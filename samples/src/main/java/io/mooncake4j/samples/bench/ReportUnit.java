package io.mooncake4j.samples.bench;

import java.util.StringJoiner;
import picocli.CommandLine;

/**
 * The units of {@code --report_unit}, with Mooncake's values: {@code GB} = 1e9 bytes, {@code GiB} =
 * 2^30 bytes, {@code Gb} = 1e9 bits. Names are case sensitive ({@code GB} and {@code Gb} differ).
 */
public enum ReportUnit {
    GB(1e9),
    GiB(1L << 30),
    Gb(1e9 / 8),
    MB(1e6),
    MiB(1L << 20),
    Mb(1e6 / 8),
    KB(1e3),
    KiB(1L << 10),
    Kb(1e3 / 8);

    private final double bytes;

    ReportUnit(double bytes) {
        this.bytes = bytes;
    }

    /** Bytes in one unit. */
    public double bytes() {
        return bytes;
    }

    /** {@code GB|GiB|Gb|MB|MiB|Mb|KB|KiB|Kb}, for messages. */
    public static String choices() {
        StringJoiner j = new StringJoiner("|");
        for (ReportUnit u : values()) {
            j.add(u.name());
        }
        return j.toString();
    }

    /** Parses a unit name, exactly as written. */
    public static ReportUnit parse(String s) {
        for (ReportUnit u : values()) {
            if (u.name().equals(s)) {
                return u;
            }
        }
        throw new IllegalArgumentException("'" + s + "' is not a report unit: use one of " + choices()
                + " (GB = 1e9 bytes, GiB = 2^30 bytes, Gb = 1e9 bits; case matters)");
    }

    /** The picocli converter. */
    public static final class Converter implements CommandLine.ITypeConverter<ReportUnit> {
        @Override
        public ReportUnit convert(String value) {
            try {
                return parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }
}
