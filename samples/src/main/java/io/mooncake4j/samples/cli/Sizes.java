package io.mooncake4j.samples.cli;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;

/**
 * Byte sizes on the command line, as GNU coreutils reads them: a plain number is bytes ({@code
 * 65536}, what Mooncake's flags take), {@code K}/{@code KiB}, {@code M}/{@code MiB}, {@code
 * G}/{@code GiB}, {@code T}/{@code TiB} are powers of 1024, and {@code KB}, {@code MB}, {@code GB},
 * {@code TB} are powers of 1000 (as in {@code --report_unit}, where GB = 1e9). Case does not matter
 * ({@code 64k} = {@code 64K}).
 */
public final class Sizes {
    private static final Pattern SIZE = Pattern.compile("(\\d+)\\s*(?:([KMGT])(IB|B)?|B)?");

    private Sizes() {}

    /**
     * Parses a size.
     *
     * @throws IllegalArgumentException with a message saying what is accepted
     */
    public static long parse(String text) {
        String t = text == null ? "" : text.trim().toUpperCase(Locale.ROOT);
        Matcher m = SIZE.matcher(t);
        if (!m.matches()) {
            throw new IllegalArgumentException("'" + text + "' is not a size: give bytes (65536) or a number"
                    + " with K, M, G, T (powers of 1024, also KiB...) or KB, MB, GB, TB (powers of 1000)");
        }
        long n;
        try {
            n = Long.parseLong(m.group(1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + text + "' is too large a size");
        }
        if (m.group(2) == null) {
            return n;
        }
        int power = "KMGT".indexOf(m.group(2).charAt(0)) + 1;
        long base = "B".equals(m.group(3)) ? 1000 : 1024;
        long result = n;
        try {
            for (int i = 0; i < power; i++) {
                result = Math.multiplyExact(result, base);
            }
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("'" + text + "' is too large a size");
        }
        return result;
    }

    /** A size for people: {@code 4 KiB}, {@code 1 MiB}, {@code 1.5 GiB}, or bytes when not round. */
    public static String format(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
        int u = 0;
        double v = bytes;
        while (u < units.length - 1 && Math.abs(v) >= 1024) {
            v /= 1024;
            u++;
        }
        if (u == 0) {
            return bytes + " B";
        }
        if (v == Math.rint(v)) {
            return (long) v + " " + units[u];
        }
        return String.format(Locale.ROOT, "%.1f %s", v, units[u]) + " (" + bytes + " B)";
    }

    /** A size for a table column: {@code 4K}, {@code 64K}, {@code 1M}, {@code 4M}; bytes otherwise. */
    public static String shortForm(long bytes) {
        String[] units = {"", "K", "M", "G", "T"};
        int u = 0;
        long v = bytes;
        while (u < units.length - 1 && v >= 1024 && v % 1024 == 0) {
            v /= 1024;
            u++;
        }
        return v + units[u];
    }

    /** The picocli converter for size options. */
    public static final class Converter implements CommandLine.ITypeConverter<Long> {
        @Override
        public Long convert(String value) {
            try {
                return parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }
}
