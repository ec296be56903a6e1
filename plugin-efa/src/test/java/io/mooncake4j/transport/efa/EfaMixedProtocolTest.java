package io.mooncake4j.transport.efa;

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
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** An efa engine and tcp engines side by side: routing by the peer's published protocol. */
@Tag("integration")
@Timeout(60)
class EfaMixedProtocolTest {
    private static TransferEngine engine(String protocol, String installed) {
        EngineConfig.Builder b = EngineConfig.builder()
                .environment(Map.of())
                .protocol(protocol)
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(Duration.ofSeconds(10))
                .set(EfaSettings.PROVIDER, "tcp;ofi_rxm")
                .set(EngineConfig.DEVICE, "lo");
        if (installed != null) {
            b.set(EngineConfig.INSTALLED_TRANSPORTS, installed);
        }
        return TransferEngine.create(b.build());
    }

    @Test
    void shouldReachATcpPeerFromAnEfaEngine() {
        try (TransferEngine efa = engine("efa", null);
                TransferEngine tcp = engine("tcp", "none");
                HostMemory src = efa.allocate(1 << 20);
                HostMemory dst = tcp.allocate(1 << 20)) {
            assertEquals("efa", efa.protocol());
            assertTrue(efa.installedProtocols().contains("tcp"), efa.installedProtocols().toString());
            Segment seg = efa.openSegment(tcp.localSegmentName());
            assertEquals("tcp", seg.descriptor().protocol());
            fillRandom(src.address(), 1 << 20, 3);
            efa.write(seg, src.address(), dst.address(), 1 << 20);
            assertSameBytes(src.address(), dst.address(), 1 << 20, "efa engine -> tcp peer");
        }
    }

    @Test
    void shouldTellATcpOnlyEngineWhyItCannotReachAnEfaPeer() throws Exception {
        try (TransferEngine efa = engine("efa", "none");
                TransferEngine tcp = engine("tcp", "none");
                HostMemory src = tcp.allocate(4096);
                HostMemory dst = efa.allocate(4096)) {
            Segment seg = tcp.openSegment(efa.localSegmentName());
            TransferBatch b = tcp.newBatch(1).write(seg, src.address(), dst.address(), 4096).submit();
            assertTrue(b.await(Duration.ofSeconds(10)));
            assertEquals(TransferStatus.INVALID, b.status(0));
            String why = b.failureReason(0);
            assertTrue(why.contains("efa") && why.contains("tcp"), why);
            assertTrue(why.contains("MC_INSTALLED_TRANSPORTS") || why.contains("classpath"), "says what to do: " + why);
        }
    }
}
