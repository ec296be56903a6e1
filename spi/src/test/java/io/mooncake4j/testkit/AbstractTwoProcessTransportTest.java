package io.mooncake4j.testkit;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Transfers between this JVM and a target engine in a child JVM, including killing the child. */
@Tag("integration")
@Timeout(180)
public abstract class AbstractTwoProcessTransportTest {
    protected abstract String protocol();

    protected TransferEngine newEngine(Duration deadline) {
        return TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol(protocol())
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(deadline)
                .build());
    }

    @Test
    void shouldMoveEveryByteToAndFromAnotherProcess() throws Exception {
        long size = 64L << 20;
        try (TargetProcessHandle child = TargetProcessHandle.start(protocol(), size);
                TransferEngine engine = newEngine(Duration.ofSeconds(10));
                HostMemory src = engine.allocate(size);
                HostMemory back = engine.allocate(size)) {
            Segment seg = engine.openSegment(child.segment);
            long[] sizes = {1, 3, 4096, 65_536 + 1, (1 << 20) + 5, size};
            long seed = 42;
            for (long n : sizes) {
                fillRandom(src.address(), n, seed++);
                engine.write(seg, src.address(), child.address, n);
                engine.read(seg, back.address(), child.address, n);
                assertSameBytes(src.address(), back.address(), n, "round trip of " + n + " bytes");
            }
        }
    }

    @Test
    void shouldFailInFlightWriteWhenTheTargetIsKilledAndStayUsable() throws Exception {
        long size = 1L << 30;
        Duration deadline = Duration.ofSeconds(4);
        try (TransferEngine engine = newEngine(deadline); HostMemory src = engine.allocate(size)) {
            fillRandom(src.address(), 1 << 20, 5);
            TargetProcessHandle child = TargetProcessHandle.start(protocol(), size);
            Segment seg = engine.openSegment(child.segment);
            engine.warmupSegment(child.segment);
            long start = System.nanoTime();
            TransferBatch b = engine.newBatch(8);
            for (int i = 0; i < 8; i++) {
                b.write(seg, src.address() + i * (size / 8), child.address + i * (size / 8), size / 8);
            }
            b.submit();
            TimeUnit.MILLISECONDS.sleep(30);
            child.kill();
            assertTrue(b.await(deadline.plusSeconds(2)), "all requests end within the deadline");
            assertTrue(System.nanoTime() - start < deadline.plusMillis(800).toNanos());
            int failed = 0;
            for (int i = 0; i < 8; i++) {
                TransferStatus st = b.status(i);
                assertTrue(st == TransferStatus.COMPLETED || st == TransferStatus.FAILED || st == TransferStatus.TIMEOUT, st.toString());
                if (st != TransferStatus.COMPLETED) {
                    failed++;
                }
            }
            assertTrue(failed > 0, "a 1 GiB write cannot finish before the kill on loopback");
            try (TargetProcessHandle second = TargetProcessHandle.start(protocol(), 1 << 20)) {
                Segment again = engine.openSegment(second.segment);
                engine.write(again, src.address(), second.address, 1 << 20);
                try (HostMemory back = engine.allocate(1 << 20)) {
                    engine.read(again, back.address(), second.address, 1 << 20);
                    assertSameBytes(src.address(), back.address(), 1 << 20, "after the kill");
                }
            }
            assertEquals(0, engine.pollNotifications().size());
        }
    }
}
