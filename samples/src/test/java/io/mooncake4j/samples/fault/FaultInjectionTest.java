package io.mooncake4j.samples.fault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.samples.Transports;
import io.mooncake4j.samples.bench.VerifyPattern;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Faults inflicted on a target peer in another JVM (some in a network namespace) while this JVM's
 * engine is moving bytes to and from it: SIGKILL, the link set down, a peer that accepts
 * connections but never answers (SIGSTOP, and a bare listening socket), a peer restarting on the
 * same name. Each case checks that the transfers in flight end with the right status within the
 * deadline ({@code MC_TRANSFER_TIMEOUT} plus {@link #SLACK} for a loaded machine), that the
 * initiator's pins are released, that the engine keeps serving, and that no byte outside the ranges
 * written changed, in either process ({@link Guards}). etcd stopped and restarted is covered by
 * {@code metadata-etcd}'s {@code EtcdFailureIntegrationTest}.
 */
@Tag("integration")
@Tag("fault")
class FaultInjectionTest {
    private static final Duration DEADLINE = Duration.ofSeconds(3);
    private static final Duration SLACK = Duration.ofSeconds(5);
    private static final int GUARD = 64 << 10;
    private static final int WINDOW = 16 << 20;
    private static final int BLOCK = 1 << 20;
    private static final Set<TransferStatus> BROKEN = EnumSet.of(TransferStatus.FAILED, TransferStatus.TIMEOUT);

    private final List<AutoCloseable> open = new ArrayList<>();
    private long seed = 1;

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private static void use(String protocol) {
        Transports.assumeAvailable(protocol);
    }

    @ParameterizedTest
    @MethodSource("io.mooncake4j.samples.Transports#all")
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void shouldFailTransfersInFlightWhenTheTargetIsKilledAndKeepServingAnother(String protocol) throws Exception {
        use(protocol);
        Connected c = connect(protocol, Where.LOOPBACK, 0);
        FaultPeer survivor = peer(protocol, Where.LOOPBACK, 0);
        TransferBatch batch = submitHeldMidTransfer(c);
        c.peer.kill();
        assertEndsWithin(batch, BROKEN);

        TransferBatch again = c.engine.newBatch(1)
                .write(c.segment, c.local.windowAddress(), c.peer.windowAddress(), BLOCK).submit();
        assertEndsWithin(again, BROKEN);
        assertEquals("intact", c.local.check(), "initiator's guards");
        assertPinsReleased(c.engine, c.local);

        Guards fresh = localBuffer(c.engine);
        assertRoundTrip(c.engine, c.engine.openSegment(survivor.segment()), fresh, survivor.windowAddress());
        assertEquals("intact", survivor.guards(), "the other target's guards");
    }

    @ParameterizedTest
    @MethodSource("io.mooncake4j.samples.Transports#all")
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void shouldTimeOutWhenThePeerAcceptsButNeverAnswersAndServeItAgainWhenItResumes(String protocol)
            throws Exception {
        use(protocol);
        Connected c = connect(protocol, Where.LOOPBACK, 0);
        TransferBatch batch = submitHeldMidTransfer(c);
        assertEndsWithin(batch, EnumSet.of(TransferStatus.TIMEOUT));
        assertRecovered(c, c.peer::resume);
    }

    @ParameterizedTest
    @MethodSource("io.mooncake4j.samples.Transports#all")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldFailOpenSegmentWithinTheHandshakeTimeoutWhenThePeerNeverAnswers(String protocol) throws Exception {
        use(protocol);
        TransferEngine engine = engine(protocol, Where.LOOPBACK);
        try (ServerSocket mute = new ServerSocket()) { // the kernel accepts; nobody ever reads or writes
            mute.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            long start = System.nanoTime();
            MooncakeException e = assertThrows(MooncakeException.class,
                    () -> engine.openSegment("127.0.0.1:" + mute.getLocalPort()));
            Duration took = Duration.ofNanos(System.nanoTime() - start);
            assertTrue(took.compareTo(engine.config().handshakeTimeout().plus(SLACK)) <= 0,
                    "openSegment took " + took + ": " + e);
            assertTrue(e.getMessage().contains("127.0.0.1:" + mute.getLocalPort()), e.getMessage());
        }
    }

    @ParameterizedTest
    @MethodSource("io.mooncake4j.samples.Transports#all")
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void shouldEndTransfersInFlightWhenTheLinkGoesDownAndWorkAgainWhenItComesBack(String protocol)
            throws Exception {
        use(protocol);
        NetnsLink link;
        try {
            link = NetnsLink.create();
        } catch (IllegalStateException e) {
            assumeTrue(false, e.getMessage());
            return;
        }
        open.add(link);
        Connected c = connect(protocol, Where.across(link), 0);
        TransferBatch batch = submitHeldMidTransfer(c);
        link.down();
        c.peer.resume();
        assertEndsWithin(batch, BROKEN);
        assertRecovered(c, link::up);
    }

    @ParameterizedTest
    @MethodSource("io.mooncake4j.samples.Transports#all")
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void shouldRefetchTheSegmentAndResumeWhenThePeerRestartsOnTheSameName(String protocol) throws Exception {
        use(protocol);
        int port;
        try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = probe.getLocalPort();
        }
        Connected c = connect(protocol, Where.LOOPBACK, port);
        TransferEngine engine = c.engine;
        Guards local = c.local;
        Segment s = c.segment;
        FaultPeer first = c.peer;
        first.kill();

        // A larger window, written at its end: outside the old buffer even if the new one starts where it did.
        FaultPeer second = FaultPeer.start(List.of(), protocol, "127.0.0.1", null, GUARD, 2 * WINDOW, port);
        open.add(second);
        assertEquals(first.segment(), second.segment(), "the restarted peer took the same name");
        TransferBatch stale = engine.newBatch(1).write(s, local.windowAddress(), first.windowAddress(), BLOCK).submit();
        assertEndsWithin(stale, BROKEN);
        long fresh = second.windowAddress() + WINDOW;
        assertNull(s.descriptor().bufferContaining(fresh, BLOCK), "the cached descriptor is the old one");
        assertSame(s, engine.openSegment(second.segment()));
        assertRoundTrip(engine, s, local, fresh); // the engine re-fetches the descriptor: the range is not in it
        assertEquals("intact", second.guards(), "restarted target's guards");
        assertEquals("intact", local.check(), "initiator's guards");
    }

    /** An initiator here, a target there, and a verified round trip between them. */
    private record Connected(TransferEngine engine, Guards local, FaultPeer peer, Segment segment) {}

    /**
     * Where the initiator (this JVM) and the target run: their addresses and NICs, and what the
     * target's java command runs under.
     */
    private record Where(List<String> prefix, String localHost, String localDevice, String peerHost,
            String peerDevice) {
        static final Where LOOPBACK = new Where(List.of(), "127.0.0.1", null, "127.0.0.1", null);

        static Where across(NetnsLink link) {
            return new Where(link.exec(), NetnsLink.HOST, link.hostDevice(), NetnsLink.PEER, link.peerDevice());
        }
    }

    private Connected connect(String protocol, Where where, int port) throws Exception {
        TransferEngine engine = engine(protocol, where);
        Guards local = localBuffer(engine);
        FaultPeer peer = peer(protocol, where, port);
        Segment s = engine.openSegment(peer.segment());
        assertRoundTrip(engine, s, local, peer.windowAddress());
        return new Connected(engine, local, peer, s);
    }

    /**
     * Stops the target (SIGSTOP) and submits a batch both ways, which is then mid-transfer: bytes
     * sent, none answered. The target stays stopped.
     */
    private static TransferBatch submitHeldMidTransfer(Connected c) throws Exception {
        c.peer.stop();
        TransferBatch batch = submitBothWays(c.engine, c.segment, c.local, c.peer.windowAddress());
        TimeUnit.MILLISECONDS.sleep(300);
        assertFalse(batch.isDone(), "the batch ended before the fault: " + statuses(batch));
        return batch;
    }

    /**
     * After the fault: the initiator's guards are intact and its pins released; once {@code heal}
     * ran, the target's guards are intact and new transfers to it work.
     */
    private void assertRecovered(Connected c, Heal heal) throws Exception {
        assertEquals("intact", c.local.check(), "initiator's guards");
        assertPinsReleased(c.engine, c.local);
        heal.run();
        assertEquals("intact", c.peer.guards(), "target's guards");
        assertRoundTrip(c.engine, c.segment, localBuffer(c.engine), c.peer.windowAddress());
        assertEquals("intact", c.peer.guards(), "target's guards after the new transfers");
    }

    private interface Heal {
        void run() throws Exception;
    }

    private TransferEngine engine(String protocol, Where where) {
        EngineConfig.Builder b = EngineConfig.builder().protocol(protocol).localHostname(where.localHost)
                .transferTimeout(DEADLINE).set(EngineConfig.HANDSHAKE_CONNECT_TIMEOUT, "2");
        if (where.localDevice != null) {
            b.device(where.localDevice);
        }
        TransferEngine e = TransferEngine.create(b.build());
        open.add(e);
        return e;
    }

    private Guards localBuffer(TransferEngine engine) {
        HostMemory m = engine.allocate(Guards.totalLength(GUARD, WINDOW));
        open.add(m);
        return Guards.arm(m, GUARD, WINDOW);
    }

    private FaultPeer peer(String protocol, Where where, int port) throws Exception {
        FaultPeer p = FaultPeer.start(where.prefix, protocol, where.peerHost, where.peerDevice, GUARD, WINDOW, port);
        open.add(p);
        return p;
    }

    /**
     * Half the window written to the target, the other half read from it: 16 requests of 1 MiB,
     * writes at even indexes.
     */
    private static TransferBatch submitBothWays(TransferEngine engine, Segment s, Guards local, long remote) {
        int half = WINDOW / 2;
        TransferBatch b = engine.newBatch(WINDOW / BLOCK);
        for (int off = 0; off < half; off += BLOCK) {
            b.write(s, local.windowAddress() + off, remote + off, BLOCK);
            b.read(s, local.windowAddress() + half + off, remote + half + off, BLOCK);
        }
        return b.submit();
    }

    /** Writes a fresh pattern to the start of the remote window, reads it back, compares. */
    private void assertRoundTrip(TransferEngine engine, Segment s, Guards local, long remote) {
        VerifyPattern pattern = new VerifyPattern(seed++);
        pattern.fill(local.window(0, BLOCK), 0);
        engine.write(s, local.windowAddress(), remote, BLOCK);
        engine.read(s, local.windowAddress() + BLOCK, remote, BLOCK);
        assertEquals(-1, pattern.firstMismatch(local.window(BLOCK, BLOCK), 0), "read back differs");
        assertEquals("intact", local.check(), "initiator's guards");
    }

    private void assertEndsWithin(TransferBatch b, Set<TransferStatus> allowed)
            throws InterruptedException {
        long start = System.nanoTime();
        assertTrue(b.await(DEADLINE.plus(SLACK)), "still pending " + Duration.ofNanos(System.nanoTime() - start)
                + " after the fault: " + statuses(b));
        System.err.println("fault: batch ended " + statuses(b) + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)
                + " ms after the fault (" + b.failureReason(0) + ")");
        for (int i = 0; i < b.size(); i++) {
            assertTrue(allowed.contains(b.status(i)), "request " + i + " ended " + b.status(i) + " ("
                    + b.failureReason(i) + "), expected one of " + allowed);
        }
    }

    /**
     * Unregistration waits for the transfers' pins, and stops the transport's users still holding
     * them (efa: operations a stopped peer never answered); it throws when some are still held.
     */
    private static void assertPinsReleased(TransferEngine engine, Guards local) {
        engine.unregisterMemory(local.windowAddress() - GUARD);
    }
    private static String statuses(TransferBatch b) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < b.size(); i++) {
            sb.append(i).append('=').append(b.status(i)).append(' ');
        }
        return sb.toString();
    }
}
