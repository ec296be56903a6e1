package io.mooncake4j.samples.fault;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.TransferEngine;
import org.junit.jupiter.api.Test;

class GuardsTest {
    private static final int GUARD = 4096;
    private static final int WINDOW = 8192;

    @Test
    void shouldReportTheFirstChangedCanaryOnEitherSideAndIgnoreTheWindow() {
        try (TransferEngine engine = TransferEngine.create(
                        EngineConfig.builder().protocol("tcp").localHostname("127.0.0.1").build());
                HostMemory m = engine.allocate(Guards.totalLength(GUARD, WINDOW))) {
            Guards g = Guards.arm(m, GUARD, WINDOW);
            g.window(0, WINDOW).put(0, (byte) 1).put(WINDOW - 1, (byte) 1);
            assertEquals("intact", g.check());

            m.buffer().put(GUARD - 1, (byte) ~m.buffer().get(GUARD - 1));
            assertEquals("changed 1 bytes before the window", g.check());

            Guards.arm(m, GUARD, WINDOW);
            m.buffer().put(GUARD + WINDOW + 7, (byte) ~m.buffer().get(GUARD + WINDOW + 7));
            assertEquals("changed 7 bytes after the window", g.check());
        }
    }
}
