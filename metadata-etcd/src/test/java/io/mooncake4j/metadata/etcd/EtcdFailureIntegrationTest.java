package io.mooncake4j.metadata.etcd;

import static io.mooncake4j.metadata.etcd.EtcdTestSupport.assertRoundTrip;
import static io.mooncake4j.metadata.etcd.EtcdTestSupport.await;
import static io.mooncake4j.metadata.etcd.EtcdTestSupport.engine;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonParser;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.extension.RegisterExtension;

/** etcd stopped, restarted empty or with its data: every call bounded, nothing published wrongly. */
@Tag("integration")
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class EtcdFailureIntegrationTest {
    /** Far above MC_ETCD_TIMEOUT (5 s) and the few calls each step makes: a hang, not a slow call. */
    private static final Duration BOUND = Duration.ofSeconds(30);

    @RegisterExtension
    final EtcdServer etcd = new EtcdServer();

    @Test
    void shouldFailEveryCallWithMetadataErrorWithinItsBoundWhenEtcdIsStopped() throws Exception {
        TransferEngine a = engine(etcd.uri());
        try (TransferEngine b = engine(etcd.uri()); HostMemory mb = b.allocate(1 << 16)) {
            Segment sb = a.openSegment(b.localSegmentName());
            etcd.stop();
            assertMetadataError(() -> a.openSegment("127.0.0.1:1"));
            assertMetadataError(() -> a.refreshSegment(sb));
            assertMetadataError(() -> a.sendNotification(b.localSegmentName(), "hello"));
            assertMetadataError(() -> a.allocate(1 << 16));
            assertMetadataError(() -> engine(etcd.uri()).close());
            assertTimeoutPreemptively(BOUND, a::close, "closing an engine while etcd is down");
        } finally {
            a.close();
        }
    }

    @Test
    void shouldRollBackRegistrationWhenPublishingItFails() throws Exception {
        try (TransferEngine a = engine(etcd.uri()); TransferEngine b = engine(etcd.uri())) {
            ByteBuffer memory = ByteBuffer.allocateDirect(1 << 16);
            etcd.stop();
            assertMetadataError(() -> a.registerMemory(memory));
            assertEquals(0, a.localDescriptor().buffers().size(), "the refused region stays out of the descriptor");
            etcd.start();
            String key = "mooncake/ram/" + a.localSegmentName();
            assertEquals(0, buffersIn(etcd.get(key)), "etcd never shows the refused region");
            // registering it again succeeds: the first attempt left nothing registered behind
            a.registerMemory(memory);
            await(BOUND, "peer never saw the region registered after etcd came back", () -> {
                try {
                    return b.openSegment(a.localSegmentName()).buffers().size() == 1
                            || b.refreshSegment(b.openSegment(a.localSegmentName())).buffers().size() == 1;
                } catch (MooncakeException e) { // the peer's client may still be reconnecting to the restarted etcd
                    return false;
                }
            });
        }
    }

    @Test
    void shouldUnregisterLocallyAndPublishLaterWhenEtcdIsDown() throws Exception {
        try (TransferEngine a = engine(etcd.uri())) {
            ByteBuffer memory = ByteBuffer.allocateDirect(1 << 16);
            a.registerMemory(memory);
            String key = "mooncake/ram/" + a.localSegmentName();
            assertEquals(1, buffersIn(etcd.get(key)));
            etcd.stop();
            assertTimeoutPreemptively(BOUND, () -> a.unregisterMemory(a.localDescriptor().buffers().get(0).address()));
            assertEquals(0, a.localDescriptor().buffers().size());
            etcd.start();
            // while etcd was down the segment's lease may have expired: its key is then absent until the
            // engine republishes; what must never show again is the unregistered region
            await(BOUND, "etcd kept showing the unregistered region after it came back (or never republished)", () -> {
                String descriptor = etcd.getUnchecked(key);
                return descriptor != null && buffersIn(descriptor) == 0;
            });
        }
    }

    private static int buffersIn(String descriptor) {
        return JsonParser.parseString(descriptor).getAsJsonObject().getAsJsonArray("buffers").size();
    }

    @Test
    void shouldRepublishWhenEtcdRestartsWithoutItsData() throws Exception {
        try (TransferEngine a = engine(etcd.uri());
                TransferEngine b = engine(etcd.uri());
                HostMemory ma = a.allocate(1 << 16);
                HostMemory mb = b.allocate(1 << 16)) {
            etcd.stop();
            etcd.wipe();
            etcd.start();
            String name = b.localSegmentName();
            await(BOUND, "the engine did not publish itself again in the emptied etcd",
                    () -> etcd.getUnchecked("mooncake/ram/" + name) != null
                            && etcd.getUnchecked("mooncake/rpc_meta/" + name) != null);
            try (TransferEngine c = engine(etcd.uri()); HostMemory mc = c.allocate(1 << 16)) {
                assertRoundTrip(c, mc, c.openSegment(name), mb, 11);
            }
            assertRoundTrip(a, ma, a.refreshSegment(a.openSegment(name)), mb, 12);
        }
    }

    @Test
    void shouldKeepEntriesAliveWhenEtcdRestartsWithItsData() throws Exception {
        try (TransferEngine b = engine(etcd.uri()); HostMemory mb = b.allocate(1 << 16)) {
            etcd.stop();
            etcd.start();
            // several TTLs: only a lease that is renewed again keeps the entries
            Thread.sleep(TimeUnit.SECONDS.toMillis(4L * EtcdTestSupport.TTL_SECONDS));
            try (TransferEngine c = engine(etcd.uri()); HostMemory mc = c.allocate(1 << 16)) {
                assertRoundTrip(c, mc, c.openSegment(b.localSegmentName()), mb, 13);
            }
        }
    }

    private static void assertMetadataError(Executable call) {
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> assertTimeoutPreemptively(BOUND, call, "a call while etcd is down"));
        assertEquals(ErrorCode.METADATA, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains("etcd"), e.getMessage());
    }

}
