package io.mooncake4j.samples.serving;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;

/** A plain text table: the first row is the header; text columns left aligned, numbers right. */
final class Table {
    private Table() {}

    static void print(PrintWriter out, List<String[]> rows) {
        print(out, rows, 1);
    }

    /** Prints with the first {@code leftColumns} columns left aligned. */
    static void print(PrintWriter out, List<String[]> rows, int leftColumns) {
        int cols = rows.get(0).length;
        int[] w = new int[cols];
        for (String[] r : rows) {
            for (int c = 0; c < cols; c++) {
                w[c] = Math.max(w[c], r[c].length());
            }
        }
        for (int i = 0; i < rows.size(); i++) {
            String[] r = rows.get(i);
            StringBuilder sb = new StringBuilder();
            for (int c = 0; c < cols; c++) {
                if (c > 0) {
                    sb.append("  ");
                }
                String pad = " ".repeat(w[c] - r[c].length());
                sb.append(c < leftColumns ? r[c] + pad : pad + r[c]);
            }
            out.println(sb.toString().stripTrailing());
            if (i == 0) {
                int total = 0;
                for (int x : w) {
                    total += x;
                }
                out.println("-".repeat(total + 2 * (cols - 1)));
            }
        }
    }

    /** A number with precision fitting its size; "-" for NaN. */
    static String num(double v) {
        if (Double.isNaN(v)) {
            return "-";
        }
        double a = Math.abs(v);
        if (a >= 1e6) {
            return String.format(Locale.ROOT, "%.0f", v);
        }
        if (a >= 100) {
            return String.format(Locale.ROOT, "%.1f", v);
        }
        if (a >= 1) {
            return String.format(Locale.ROOT, "%.2f", v);
        }
        return String.format(Locale.ROOT, "%.3f", v);
    }

    /** A byte count in B, KiB, MiB or GiB. */
    static String bytes(double b) {
        if (Double.isNaN(b)) {
            return "-";
        }
        String[] units = {"B", "KiB", "MiB", "GiB"};
        int u = 0;
        while (b >= 1024 && u < units.length - 1) {
            b /= 1024;
            u++;
        }
        return u == 0 ? String.format(Locale.ROOT, "%.0f B", b) : String.format(Locale.ROOT, "%.1f %s", b, units[u]);
    }
}
