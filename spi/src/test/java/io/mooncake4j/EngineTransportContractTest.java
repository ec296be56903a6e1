package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.Mockito.doAnswer;
import static org.mockito.Mockito.doThrow;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.timeout;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import io.mooncake4j.internal.handshake.HandshakeClient;
import io.mooncake4j.internal.handshake.HandshakeFrame;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Submission;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.mockito.ArgumentCaptor;

/** How the engine drives a transport, checked against a Mockito mock of the SPI. */
@Timeout(30)
class EngineTransportContractTest {
    private final Transport transport = mock(Transport.class);
    private TransferEngine engine;
    private TransferEngine peer;
    private TransportContext context;

    @BeforeEach
    void start() {
        when(transport.protocol()).thenReturn(InMemoryTransportProvider.PROTOCOL);
        when(transport.registerRegion(any())).thenReturn(RegionRegistration.NONE);
        peer = TransferEngine.create(TransferEngineTest.config().build());
        InMemoryTransportProvider.override = c -> {
            context = c;
            return transport;
        };
        try {
            engine = TransferEngine.create(TransferEngineTest.config().transferTimeout(Duration.ofMillis(300)).build());
        } finally {
            InMemoryTransportProvider.override = null;
        }
    }

    @AfterEach
    void stop() {
        engine.close();
        peer.close();
    }

    @Test
    void shouldAbortTheSubmissionOnceAtTheDeadline() throws Exception {
        try (HostMemory src = engine.allocate(4096); HostMemory dst = peer.allocate(4096)) {
            Segment seg = engine.openSegment(peer.localSegmentName());
            TransferBatch b = engine.newBatch(2)
                    .write(seg, src.address(), dst.address(), 16)
                    .read(seg, src.address() + 16, dst.address(), 16)
                    .submit();
            ArgumentCaptor<Submission> work = ArgumentCaptor.forClass(Submission.class);
            verify(transport).submit(any(SegmentDescriptor.class), work.capture());
            assertEquals(2, work.getValue().size());
            assertEquals(Opcode.READ, work.getValue().opcode(1));
            assertTrue(b.await(Duration.ofSeconds(5)));
            assertEquals(TransferStatus.TIMEOUT, b.status(0));
            assertEquals(TransferStatus.TIMEOUT, b.status(1));
            verify(transport, timeout(2000).times(1)).abort(work.getValue());
            assertTrue(work.getValue().isAborted());
            work.getValue().partDone(0, TransferStatus.COMPLETED);
            work.getValue().partFailed(1, TransferStatus.CANCELED, "dropped");
            assertEquals(TransferStatus.TIMEOUT, b.status(0), "a late completion changes nothing");
            assertEquals(TransferStatus.TIMEOUT, b.status(1));
        }
    }

    @Test
    void shouldIgnoreLateReportsAboutAnEarlierRoundOfAReusedBatch() throws Exception {
        try (HostMemory src = engine.allocate(4096); HostMemory dst = peer.allocate(4096)) {
            Segment seg = engine.openSegment(peer.localSegmentName());
            TransferBatch b = engine.newBatch(1).write(seg, src.address(), dst.address(), 16).submit();
            assertTrue(b.await(Duration.ofSeconds(5)));
            assertEquals(TransferStatus.TIMEOUT, b.status(0));
            ArgumentCaptor<Submission> first = ArgumentCaptor.forClass(Submission.class);
            verify(transport, timeout(2000)).abort(first.capture());
            Submission stale = first.getValue();

            b.reset().write(seg, src.address(), dst.address(), 16).submit();
            assertEquals(TransferStatus.PENDING, b.status(0));
            stale.partDone(0, TransferStatus.COMPLETED);
            stale.partFailed(0, TransferStatus.FAILED, "late");
            assertEquals(TransferStatus.PENDING, b.status(0), "round 1's reports do not touch round 2");
            ArgumentCaptor<Submission> both = ArgumentCaptor.forClass(Submission.class);
            verify(transport, times(2)).submit(any(), both.capture());
            both.getAllValues().get(1).partDone(0, TransferStatus.COMPLETED);
            assertEquals(TransferStatus.COMPLETED, b.status(0));
            assertTrue(b.isAllCompleted());
        }
    }

    @Test
    void shouldEndARequestOnlyWhenAllItsPartsReported() throws Exception {
        try (HostMemory src = engine.allocate(4096); HostMemory dst = peer.allocate(4096)) {
            Segment seg = engine.openSegment(peer.localSegmentName());
            doAnswer(inv -> {
                Submission s = inv.getArgument(1);
                s.expectParts(0, 3);
                s.partDone(0, TransferStatus.COMPLETED);
                s.partFailed(0, TransferStatus.FAILED, "lane 2 reset");
                return null;
            }).when(transport).submit(any(), any());
            TransferBatch b = engine.newBatch(1).write(seg, src.address(), dst.address(), 4096).submit();
            assertEquals(TransferStatus.PENDING, b.status(0), "one part is still moving data");
            ArgumentCaptor<Submission> work = ArgumentCaptor.forClass(Submission.class);
            verify(transport).submit(any(), work.capture());
            work.getValue().partDone(0, TransferStatus.COMPLETED);
            assertEquals(TransferStatus.FAILED, b.status(0));
            assertEquals("lane 2 reset", b.failureReason(0));
        }
    }

    @Test
    void shouldFailRequestsWhenTheTransportThrows() {
        try (HostMemory src = engine.allocate(4096); HostMemory dst = peer.allocate(4096)) {
            Segment seg = engine.openSegment(peer.localSegmentName());
            doThrow(new IllegalStateException("boom")).when(transport).submit(any(), any());
            TransferBatch b = engine.newBatch(1).write(seg, src.address(), dst.address(), 16).submit().join();
            assertEquals(TransferStatus.FAILED, b.status(0));
            assertTrue(b.failureReason(0).contains("boom"));
        }
    }

    @Test
    void shouldPublishPerBufferTransportFields() {
        JsonObject keys = new JsonObject();
        JsonArray rkey = new JsonArray();
        rkey.add(0x1234L);
        keys.add("rkey", rkey);
        RegionRegistration registration = () -> keys;
        when(transport.registerRegion(any())).thenReturn(registration);
        try (HostMemory m = engine.allocate(4096)) {
            Segment seen = peer.openSegment(engine.localSegmentName());
            BufferDescriptor b = seen.descriptor().bufferContaining(m.address(), 1);
            assertEquals(0x1234L, b.extra().getAsJsonArray("rkey").get(0).getAsLong());
            assertArrayEquals(new long[] {0x1234L}, b.rkeys(), "keys parsed once with the descriptor");
            assertEquals(0, b.lkeys().length);
        }
        verify(transport, times(1)).unregisterRegion(any(), org.mockito.ArgumentMatchers.same(registration));
    }

    @Test
    void shouldKeepLocalMemoryPinnedUntilEveryIssuedPartIsReported() throws Exception {
        try (HostMemory one = engine.allocate(4096); HostMemory two = engine.allocate(4096);
                HostMemory dst = peer.allocate(8192)) {
            Segment seg = engine.openSegment(peer.localSegmentName());
            doAnswer(inv -> {
                Submission s = inv.getArgument(1);
                s.expectParts(0, 2);
                return null;
            }).when(transport).submit(any(), any());
            TransferBatch b = engine.newBatch(2)
                    .write(seg, one.address(), dst.address(), 4096)
                    .write(seg, two.address(), dst.address() + 4096, 4096)
                    .submit();
            assertTrue(b.await(Duration.ofSeconds(5)));
            assertEquals(TransferStatus.TIMEOUT, b.status(0), "the status ends at the deadline");
            ArgumentCaptor<Submission> work = ArgumentCaptor.forClass(Submission.class);
            verify(transport, timeout(2000)).abort(work.capture());
            Submission w = work.getValue();
            w.partDone(0, TransferStatus.COMPLETED); // one of request 0's two parts
            w.partFailed(1, TransferStatus.CANCELED, "dropped"); // request 1's only part
            engine.unregisterMemory(two.address()); // released: nothing of it is out any more
            MooncakeException e = assertThrows(MooncakeException.class, () -> engine.unregisterMemory(one.address()));
            assertTrue(e.getMessage().contains("1 transfers still use it"), e.getMessage());
            w.partDone(0, TransferStatus.COMPLETED);
            assertEquals(TransferStatus.TIMEOUT, b.status(0), "late reports change no status");
        }
    }

    @Test
    void shouldTimeOutOtherBatchesWhileATransportAbortIsSlow() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        CountDownLatch reported = new CountDownLatch(2);
        List<String> abortThreads = new CopyOnWriteArrayList<>();
        doAnswer(inv -> {
            abortThreads.add(Thread.currentThread().getName());
            if (abortThreads.size() == 1) {
                release.await(20, TimeUnit.SECONDS); // the first abort hangs until the test lets it go
            }
            Submission s = inv.getArgument(0);
            s.partFailed(0, TransferStatus.CANCELED, "dropped");
            reported.countDown();
            return null;
        }).when(transport).abort(any());
        try (HostMemory src = engine.allocate(4096); HostMemory dst = peer.allocate(4096)) {
            Segment seg = engine.openSegment(peer.localSegmentName());
            TransferBatch first = engine.newBatch(1).write(seg, src.address(), dst.address(), 16).submit();
            assertTrue(first.await(Duration.ofSeconds(5)));
            verify(transport, timeout(5000)).abort(any());
            TransferBatch second = engine.newBatch(1).write(seg, src.address(), dst.address(), 16).submit();
            assertTrue(second.await(Duration.ofSeconds(5)), "a hanging abort held up another batch's deadline");
            assertEquals(TransferStatus.TIMEOUT, second.status(0));
            release.countDown();
            assertTrue(reported.await(10, TimeUnit.SECONDS));
        } finally {
            release.countDown();
        }
        assertFalse(abortThreads.stream().anyMatch(n -> n.startsWith("mooncake4j-deadline")), abortThreads.toString());
    }

    @Test
    void shouldEndEveryBatchCanceledOnCloseBeforeAbortingAny() throws Exception {
        try (HostMemory src = engine.allocate(4096); HostMemory dst = peer.allocate(4096)) {
            Segment seg = engine.openSegment(peer.localSegmentName());
            TransferBatch[] batches = new TransferBatch[3];
            StringBuilder seenAtAbort = new StringBuilder();
            doAnswer(inv -> {
                Submission s = inv.getArgument(0);
                for (TransferBatch b : batches) {
                    seenAtAbort.append(b.status(0)).append(s.isAborted() ? "+aborted " : " ");
                }
                return null;
            }).when(transport).abort(any());
            for (int k = 0; k < batches.length; k++) {
                batches[k] = engine.newBatch(1).write(seg, src.address(), dst.address(), 16).submit();
            }
            engine.close();
            for (TransferBatch b : batches) {
                assertTrue(b.isDone());
                assertEquals(TransferStatus.CANCELED, b.status(0), b.failureReason(0));
            }
            verify(transport, times(3)).abort(any());
            assertFalse(seenAtAbort.toString().contains("PENDING"), "every batch ended before the first abort: " + seenAtAbort);
            assertTrue(seenAtAbort.toString().contains("+aborted"), seenAtAbort.toString());
        }
    }

    @Test
    void shouldHandTheTransportItsRegistrationAndThePeersBufferPerRequest() {
        RegionRegistration registration = JsonObject::new;
        when(transport.registerRegion(any())).thenReturn(registration);
        try (HostMemory src = engine.allocate(8192); HostMemory dst = peer.allocate(8192)) {
            Segment seg = engine.openSegment(peer.localSegmentName());
            engine.newBatch(1).write(seg, src.address() + 100, dst.address() + 200, 16).submit();
            ArgumentCaptor<Submission> work = ArgumentCaptor.forClass(Submission.class);
            verify(transport).submit(any(), work.capture());
            Submission w = work.getValue();
            assertSame(registration, w.localRegistration(0));
            assertEquals(dst.address(), w.remoteBuffer(0).address());
            assertEquals(dst.length(), w.remoteBuffer(0).length());
            assertFalse(w.isAborted());
            w.partDone(0, TransferStatus.COMPLETED);
        }
    }

    @Test
    void shouldDispatchConnectionHandshakesByProtocol() {
        JsonObject accepted = new JsonObject();
        accepted.addProperty("reply_msg", "");
        accepted.addProperty("efa_addr", "fe80");
        when(transport.onConnectionRequest(any())).thenReturn(accepted);
        InetSocketAddress rpc = new InetSocketAddress("127.0.0.1", engine.rpcPort());
        JsonObject named = new JsonObject();
        named.addProperty("protocol", InMemoryTransportProvider.PROTOCOL);
        assertEquals("fe80", call(rpc, named).get("efa_addr").getAsString());
        assertEquals("fe80", call(rpc, new JsonObject()).get("efa_addr").getAsString(), "a Mooncake peer names none");
        verify(transport, times(2)).onConnectionRequest(any());
        JsonObject other = new JsonObject();
        other.addProperty("protocol", "efa");
        String refused = call(rpc, other).get("reply_msg").getAsString();
        assertTrue(refused.contains("'efa'") && refused.contains(InMemoryTransportProvider.PROTOCOL), refused);
    }

    private static JsonObject call(InetSocketAddress rpc, JsonObject request) {
        return HandshakeClient.call(rpc, HandshakeFrame.CONNECTION, request, Duration.ofSeconds(5), 1 << 20);
    }

    @Test
    void shouldLocateP2pPeersAtTheHostOfTheirName() throws Exception {
        Segment seg = engine.openSegment(peer.localSegmentName());
        assertEquals(InetAddress.getByName("127.0.0.1"), context.peerHost(seg.name()));
        assertEquals(InetAddress.getByName("::1"), context.peerHost("[::1]:15001"), "a segment not opened yet");
        assertEquals(InetAddress.getByName("10.1.2.3"), context.peerHost("10.1.2.3:15002"));
        MooncakeException e = assertThrows(MooncakeException.class, () -> context.peerHost("prefill-0"));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code(), "a P2P name must be host:port: " + e.getMessage());
    }

    @Test
    void shouldCloseTheTransportOnce() {
        engine.close();
        engine.close();
        verify(transport, times(1)).close();
    }
}
