package io.mooncake4j.metadata.etcd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Map;
import java.util.Random;
import java.util.function.BooleanSupplier;

/** Engines on loopback over the tcp transport, with short lease and timeout, for the etcd tests. */
final class EtcdTestSupport {
    static final int TTL_SECONDS = 2;

    private EtcdTestSupport() {}

    static EngineConfig.Builder config(String metadataServer) {
        return EngineConfig.builder()
                .environment(Map.of())
                .protocol("tcp")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(Duration.ofSeconds(20))
                .metadataServer(metadataServer)
                .set(EtcdSettings.LEASE_TTL, Integer.toString(TTL_SECONDS))
                .set(EtcdSettings.TIMEOUT, "5");
    }

    static TransferEngine engine(String metadataServer) {
        return TransferEngine.create(config(metadataServer).build());
    }

    /** Writes random bytes from {@code from} into the peer's memory, reads them back, and checks both. */
    static void assertRoundTrip(TransferEngine initiator, HostMemory from, Segment peer, HostMemory peerMemory, long seed) {
        int n = (int) Math.min(from.length(), peerMemory.length()) / 2;
        byte[] sent = new byte[n];
        new Random(seed).nextBytes(sent);
        from.buffer(0, n).put(sent);
        initiator.write(peer, from.address(), peerMemory.address(), n);
        byte[] landed = new byte[n];
        peerMemory.buffer(0, n).get(landed);
        assertArrayEquals(sent, landed, "bytes written through tcp to " + peer.name());
        initiator.read(peer, from.address() + n, peerMemory.address(), n);
        byte[] back = new byte[n];
        ByteBuffer b = from.buffer(n, n);
        b.get(back);
        assertArrayEquals(sent, back, "bytes read back through tcp from " + peer.name());
    }

    /** Waits for {@code condition}, failing with {@code what} after {@code bound}. */
    static void await(Duration bound, String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + bound.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail(what + " (waited " + bound.toSeconds() + " s)");
            }
            Thread.sleep(50);
        }
    }
}
