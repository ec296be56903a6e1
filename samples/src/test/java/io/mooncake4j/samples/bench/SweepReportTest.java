package io.mooncake4j.samples.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.Opcode;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;

class SweepReportTest {
    private static final List<ThroughputLoop.Result> POINTS = List.of(
            new ThroughputLoop.Result(Opcode.READ, 4096, 128, 1, 1.0, 100, 0, 0),
            new ThroughputLoop.Result(Opcode.WRITE, 4096, 128, 1, 1.0, 200, 0, 0),
            new ThroughputLoop.Result(Opcode.READ, 1 << 20, 128, 2, 2.0, 30, 0, 0),
            new ThroughputLoop.Result(Opcode.WRITE, 1 << 20, 128, 2, 2.0, 40, 0, 0));

    @Test
    void shouldPrintATableRowPerPoint() {
        List<String> t = new SweepReport(POINTS, ReportUnit.GB, 2).table();
        assertEquals(5, t.size());
        assertTrue(t.get(0).contains("GB/s") && t.get(0).contains("req/s"), t.get(0));
        // 100 batches x 128 x 4096 B in 1 s = 0.05 GB/s, 12800 req/s
        assertEquals(List.of("4K", "1", "read", "0.05", "12800"), List.of(t.get(1).trim().split(" +")));
        assertEquals(List.of("1M", "2", "write", "2.68", "2560"), List.of(t.get(4).trim().split(" +")));
    }

    @Test
    void shouldWriteCsvWithExactCounts() {
        String[] lines = new SweepReport(POINTS, ReportUnit.GiB, 2).csv().split("\n");
        assertEquals("block_size,threads,operation,batch_size,duration_s,batches,requests,bytes,"
                + "throughput_GiB_per_s,requests_per_s", lines[0]);
        assertEquals("4096,1,read,128,1.000,100,12800,52428800,0.0488,12800.0", lines[1]);
        assertEquals(5, lines.length);
    }

    @Test
    void shouldWriteWellFormedSvgWithALinePerSeries() throws Exception {
        String svg = new SweepReport(POINTS, ReportUnit.GB, 2).svg("sweep <tcp> & more");
        Document doc = DocumentBuilderFactory.newInstance().newDocumentBuilder()
                .parse(new ByteArrayInputStream(svg.getBytes(StandardCharsets.UTF_8)));
        assertEquals("svg", doc.getDocumentElement().getTagName());
        assertEquals(4, doc.getElementsByTagName("polyline").getLength());
        assertEquals(4, doc.getElementsByTagName("circle").getLength());
        assertTrue(svg.contains("sweep &lt;tcp&gt; &amp; more"));
        assertTrue(svg.contains("read, 1 thread") && svg.contains("write, 2 threads"), svg);
    }

    @Test
    void shouldPickRoundAxisTops() {
        assertEquals(5, SweepReport.niceCeiling(4.6));
        assertEquals(0.5, SweepReport.niceCeiling(0.45), 1e-12);
        assertEquals(1, SweepReport.niceCeiling(0));
    }
}
