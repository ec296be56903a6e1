package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.testkit.ResourceCount;
import io.mooncake4j.testkit.TargetProcessHandle;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** An engine under handshake floods from raw loopback clients (issue #7, items 3 and 4). */
@Tag("integration")
class TransferEngineFloodTest {
    private final List<TransferEngine> engines = new ArrayList<>();
    private final List<Socket> flood = new ArrayList<>();

    @AfterEach
    void stop() throws IOException {
        for (Socket s : flood) {
            s.close();
        }
        engines.forEach(TransferEngine::close);
    }

    private TransferEngine engine(EngineConfig.Builder config) {
        TransferEngine e = TransferEngine.create(config.build());
        engines.add(e);
        return e;
    }

    private static void eventually(BooleanSupplier condition, Duration within, String what)
            throws InterruptedException {
        long deadline = System.nanoTime() + within.toNanos();
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "not true within " + within + ": " + what);
            Thread.sleep(10);
        }
    }

    /** Writes 64 KiB from a to b and checks every byte arrived. */
    static void assertTransfers(TransferEngine a, TransferEngine b) {
        try (HostMemory src = a.allocate(1 << 16); HostMemory dst = b.allocate(1 << 16)) {
            byte[] data = new byte[1 << 16];
            new Random(7).nextBytes(data);
            src.buffer(0, data.length).put(data);
            Segment seg = a.openSegment(b.localSegmentName());
            a.write(seg, src.address(), dst.address(), data.length);
            byte[] got = new byte[data.length];
            dst.buffer(0, data.length).get(got);
            assertArrayEquals(data, got);
        }
    }

    @Test
    @Timeout(60)
    void shouldOpenSegmentAndTransferWhile500SilentConnectionsAreHeld() throws Exception {
        TransferEngine a = engine(TransferEngineTest.config());
        TransferEngine b = engine(TransferEngineTest.config());
        long fds = ResourceCount.openFileDescriptors();
        String handlers = "mooncake4j-handshake-" + b.rpcPort() + "-handler-";
        for (int i = 0; i < 500; i++) {
            Socket s = new Socket();
            flood.add(s);
            s.bind(new InetSocketAddress("127.0.0.2", 0)); // another host than the real peer
            s.connect(new InetSocketAddress("127.0.0.1", b.rpcPort()), 2000);
        }
        long start = System.nanoTime();
        assertTransfers(a, b); // openSegment (a Metadata call) during the flood, then a write
        System.out.printf(
                "openSegment and a 64 KiB write took %.1f ms while 500 silent connections were"
                        + " open%n",
                (System.nanoTime() - start) / 1e6);
        assertTrue(ResourceCount.liveThreads(handlers) <= 2, "silent connections took threads");
        for (Socket s : flood) {
            s.close();
        }
        flood.clear();
        eventually(
                () -> ResourceCount.openFileDescriptors() <= fds + 8,
                Duration.ofSeconds(10),
                "file descriptors back to " + fds);
        TransferEngine c = engine(TransferEngineTest.config());
        assertTransfers(c, b);
    }

    @Test
    @Timeout(60)
    void shouldRefuseNotificationsOverTheByteBoundAndStayUsable() throws Exception {
        TransferEngine a = engine(TransferEngineTest.config());
        TransferEngine b =
                engine(
                        TransferEngineTest.config()
                                .set(EngineConfig.NOTIFY_MAX_PENDING_BYTES, Integer.toString(1 << 20))
                                .set(EngineConfig.NOTIFY_MAX_MESSAGE_SIZE, Integer.toString(256 << 10)));
        long fds = ResourceCount.openFileDescriptors();
        int size = 200_000;
        long each = size + a.localSegmentName().length();
        int fits = (int) ((1 << 20) / each);
        List<Notification> sent = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            String text = Character.toString('a' + i % 26).repeat(size - 2) + String.format("%02d", i);
            if (i < fits) {
                a.sendNotification(b.localSegmentName(), text);
                sent.add(new Notification(a.localSegmentName(), text));
            } else {
                MooncakeException e = assertThrows(
                        MooncakeException.class, () -> a.sendNotification(b.localSegmentName(), text));
                assertTrue(e.getMessage().contains("MC_NOTIFY_MAX_PENDING_BYTES"), e.getMessage());
            }
        }
        assertEquals(40 - fits, (long) b.counters().get("notifications.refused"));
        assertEquals(sent, b.pollNotifications());
        a.sendNotification(b.localSegmentName(), "room again");
        assertEquals(List.of(new Notification(a.localSegmentName(), "room again")), b.pollNotifications());
        assertTransfers(a, b);
        eventually(() -> ResourceCount.openFileDescriptors() <= fds + 8, Duration.ofSeconds(10),
                "file descriptors back to " + fds);
    }

    @Test
    @Timeout(30)
    void shouldRefuseANotificationOverTheSizeLimit() {
        TransferEngine a = engine(TransferEngineTest.config());
        TransferEngine b = engine(TransferEngineTest.config().set(EngineConfig.NOTIFY_MAX_MESSAGE_SIZE, "1024"));
        MooncakeException e = assertThrows(
                MooncakeException.class, () -> a.sendNotification(b.localSegmentName(), "x".repeat(1025)));
        assertTrue(e.getMessage().contains("MC_NOTIFY_MAX_MESSAGE_SIZE"), e.getMessage());
        a.sendNotification(b.localSegmentName(), "y".repeat(1024));
        assertEquals(List.of(new Notification(a.localSegmentName(), "y".repeat(1024))), b.pollNotifications());
        assertEquals(1, (long) b.counters().get("notifications.refused"));
    }

    /**
     * The target never polls, as the bench target does, and its heap (128 MiB) is smaller than what
     * the flood sends (150 MB): without a byte bound it runs out of memory and stops accepting.
     */
    @Test
    @Timeout(180)
    void shouldSurviveANotificationFloodInASmallHeap() throws Exception {
        TransferEngine a = engine(TransferEngineTest.config().transferTimeout(Duration.ofSeconds(30)));
        try (TargetProcessHandle target = TargetProcessHandle.start(InMemoryTransportProvider.PROTOCOL, 4096,
                List.of("-Xmx128m"))) {
            int size = 1_000_000;
            int accepted = 0;
            for (int i = 0; i < 150; i++) {
                try {
                    a.sendNotification(target.segment, "n".repeat(size - 3) + String.format("%03d", i));
                    accepted++;
                } catch (MooncakeException e) {
                    assertTrue(e.getMessage().contains("MC_NOTIFY_MAX_PENDING_BYTES"), e.getMessage());
                }
            }
            long each = size + a.localSegmentName().length();
            assertEquals((64L << 20) / each, accepted, "accepted up to the default 64 MiB bound");
            assertEquals(target.segment, a.openSegment(target.segment).name());
            assertTrue(target.process.isAlive());
        }
    }
}
