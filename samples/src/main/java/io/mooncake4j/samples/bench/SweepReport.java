package io.mooncake4j.samples.bench;

import io.mooncake4j.Opcode;
import io.mooncake4j.samples.cli.Sizes;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;

/**
 * The results of {@code bench --sweep}: a text table, CSV, and an SVG line chart (throughput against
 * block size, one line per operation and thread count). The SVG is written by hand: no chart
 * library, nothing to load at run time.
 */
public final class SweepReport {
    private static final String[] COLORS = {
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"
    };

    private final List<ThroughputLoop.Result> points;
    private final ReportUnit unit;
    private final int precision;

    public SweepReport(List<ThroughputLoop.Result> points, ReportUnit unit, int precision) {
        this.points = List.copyOf(points);
        this.unit = unit;
        this.precision = precision;
    }

    /** The table header. */
    public String header() {
        return String.format(Locale.ROOT, "%10s  %7s  %-5s  %12s  %12s", "block size", "threads", "op",
                unit.name() + "/s", "req/s");
    }

    /** One table row. */
    public String row(ThroughputLoop.Result r) {
        return String.format(Locale.ROOT, "%10s  %7d  %-5s  %12s  %12s", Sizes.shortForm(r.blockSize()), r.threads(),
                r.op().name().toLowerCase(Locale.ROOT), BenchReport.fixed(r.throughput(unit), precision),
                BenchReport.fixed(r.requestsPerSecond(), 0));
    }

    /** The whole table, header first. */
    public List<String> table() {
        List<String> lines = new ArrayList<>();
        lines.add(header());
        for (ThroughputLoop.Result r : points) {
            lines.add(row(r));
        }
        return lines;
    }

    /** CSV with a header line; throughput in the report unit, exact counts alongside. */
    public String csv() {
        StringBuilder sb = new StringBuilder();
        sb.append("block_size,threads,operation,batch_size,duration_s,batches,requests,bytes,throughput_")
                .append(unit.name()).append("_per_s,requests_per_s\n");
        for (ThroughputLoop.Result r : points) {
            sb.append(r.blockSize()).append(',').append(r.threads()).append(',')
                    .append(r.op().name().toLowerCase(Locale.ROOT)).append(',').append(r.batchSize()).append(',')
                    .append(BenchReport.fixed(r.seconds(), 3)).append(',').append(r.batches()).append(',')
                    .append(r.requests()).append(',').append(r.bytes()).append(',')
                    .append(BenchReport.fixed(r.throughput(unit), 4)).append(',')
                    .append(BenchReport.fixed(r.requestsPerSecond(), 1)).append('\n');
        }
        return sb.toString();
    }

    /** An SVG line chart: x = block size (log scale), y = throughput; a line per op and thread count. */
    public String svg(String title) {
        final int width = 860;
        final int height = 520;
        final int left = 80;
        final int right = 190;
        final int top = 50;
        final int bottom = 60;
        int plotW = width - left - right;
        int plotH = height - top - bottom;
        TreeSet<Long> sizes = new TreeSet<>();
        double maxY = 0;
        Map<String, List<ThroughputLoop.Result>> series = new LinkedHashMap<>();
        for (ThroughputLoop.Result r : points) {
            sizes.add(r.blockSize());
            maxY = Math.max(maxY, r.throughput(unit));
            series.computeIfAbsent(r.op().name().toLowerCase(Locale.ROOT) + ", " + r.threads()
                    + (r.threads() == 1 ? " thread" : " threads"), k -> new ArrayList<>()).add(r);
        }
        double yTop = niceCeiling(maxY);
        double minLog = sizes.isEmpty() ? 0 : Math.log(sizes.first());
        double maxLog = sizes.isEmpty() ? 1 : Math.log(sizes.last());
        double span = maxLog > minLog ? maxLog - minLog : 1;

        StringBuilder s = new StringBuilder();
        s.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"").append(width).append("\" height=\"")
                .append(height).append("\" viewBox=\"0 0 ").append(width).append(' ').append(height)
                .append("\" font-family=\"sans-serif\" font-size=\"12\">\n");
        s.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        s.append(text(width / 2.0 - right / 2.0, 28, "middle", 16, escape(title)));
        // y grid and labels
        int ticks = 5;
        for (int i = 0; i <= ticks; i++) {
            double v = yTop * i / ticks;
            double y = top + plotH - plotH * (v / yTop);
            s.append(line(left, y, left + plotW, y, "#dddddd", false));
            s.append(text(left - 8, y + 4, "end", 12, trim(v)));
        }
        // x labels
        for (long size : sizes) {
            double x = left + plotW * ((Math.log(size) - minLog) / span);
            s.append(line(x, top, x, top + plotH, "#eeeeee", false));
            s.append(text(x, top + plotH + 18, "middle", 12, Sizes.shortForm(size)));
        }
        s.append(line(left, top + plotH, left + plotW, top + plotH, "#333333", false));
        s.append(line(left, top, left, top + plotH, "#333333", false));
        s.append(text(left + plotW / 2.0, height - 18, "middle", 13, "block size (bytes, log scale)"));
        s.append("<text x=\"18\" y=\"").append(top + plotH / 2).append("\" text-anchor=\"middle\" font-size=\"13\""
                + " transform=\"rotate(-90 18 ").append(top + plotH / 2).append(")\">throughput (")
                .append(unit.name()).append("/s)</text>\n");
        // series
        int index = 0;
        for (Map.Entry<String, List<ThroughputLoop.Result>> e : series.entrySet()) {
            List<ThroughputLoop.Result> rs = new ArrayList<>(e.getValue());
            rs.sort((a, b) -> Long.compare(a.blockSize(), b.blockSize()));
            boolean write = rs.get(0).op() == Opcode.WRITE;
            String color = COLORS[threadColor(rs.get(0).threads(), index) % COLORS.length];
            StringBuilder pts = new StringBuilder();
            for (ThroughputLoop.Result r : rs) {
                double x = left + plotW * ((Math.log(r.blockSize()) - minLog) / span);
                double y = top + plotH - plotH * (r.throughput(unit) / yTop);
                pts.append(fmt(x)).append(',').append(fmt(y)).append(' ');
                s.append("<circle cx=\"").append(fmt(x)).append("\" cy=\"").append(fmt(y))
                        .append("\" r=\"3\" fill=\"").append(color).append("\"><title>").append(escape(e.getKey()))
                        .append(", ").append(Sizes.shortForm(r.blockSize())).append(": ")
                        .append(BenchReport.fixed(r.throughput(unit), precision)).append(' ').append(unit.name())
                        .append("/s</title></circle>\n");
            }
            s.append("<polyline fill=\"none\" stroke=\"").append(color).append("\" stroke-width=\"2\"")
                    .append(write ? " stroke-dasharray=\"6 4\"" : "").append(" points=\"")
                    .append(pts.toString().trim()).append("\"/>\n");
            double ly = top + 10 + index * 20;
            double lx = left + plotW + 20;
            s.append("<line x1=\"").append(fmt(lx)).append("\" y1=\"").append(fmt(ly)).append("\" x2=\"")
                    .append(fmt(lx + 28)).append("\" y2=\"").append(fmt(ly)).append("\" stroke=\"").append(color)
                    .append("\" stroke-width=\"2\"").append(write ? " stroke-dasharray=\"6 4\"" : "").append("/>\n");
            s.append(text(lx + 34, ly + 4, "start", 12, escape(e.getKey())));
            index++;
        }
        s.append("</svg>\n");
        return s.toString();
    }

    /** Lines of the same thread count share a colour; read is solid and write dashed. */
    private int threadColor(int threads, int fallback) {
        TreeSet<Integer> all = new TreeSet<>();
        for (ThroughputLoop.Result r : points) {
            all.add(r.threads());
        }
        int i = all.headSet(threads).size();
        return i >= 0 ? i : fallback;
    }

    /** Writes the CSV to {@code path}. */
    public void writeCsv(Path path) throws IOException {
        Files.writeString(path, csv(), StandardCharsets.UTF_8);
    }

    /** Writes the chart to {@code path}. */
    public void writeSvg(Path path, String title) throws IOException {
        Files.writeString(path, svg(title), StandardCharsets.UTF_8);
    }

    static double niceCeiling(double v) {
        if (!(v > 0)) {
            return 1;
        }
        double mag = Math.pow(10, Math.floor(Math.log10(v)));
        for (double step : new double[] {1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10}) {
            if (v <= step * mag) {
                return step * mag;
            }
        }
        return 10 * mag;
    }

    private static String trim(double v) {
        String s = BenchReport.fixed(v, 3);
        s = s.replaceAll("0+$", "");
        return s.endsWith(".") ? s.substring(0, s.length() - 1) : s;
    }

    private static String fmt(double v) {
        return BenchReport.fixed(v, 1);
    }

    private static String line(double x1, double y1, double x2, double y2, String color, boolean dashed) {
        return "<line x1=\"" + fmt(x1) + "\" y1=\"" + fmt(y1) + "\" x2=\"" + fmt(x2) + "\" y2=\"" + fmt(y2)
                + "\" stroke=\"" + color + "\"" + (dashed ? " stroke-dasharray=\"4 4\"" : "") + "/>\n";
    }

    private static String text(double x, double y, String anchor, int size, String body) {
        return "<text x=\"" + fmt(x) + "\" y=\"" + fmt(y) + "\" text-anchor=\"" + anchor + "\" font-size=\"" + size
                + "\">" + body + "</text>\n";
    }

    static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
