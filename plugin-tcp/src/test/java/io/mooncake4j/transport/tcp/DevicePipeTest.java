package io.mooncake4j.transport.tcp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.Submission;
import io.mooncake4j.testkit.Bytes;
import io.mooncake4j.testkit.FakeGpu;
import java.io.IOException;
import java.lang.reflect.Proxy;
import java.nio.ByteBuffer;
import java.nio.channels.Pipe;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link DevicePipe} against {@link FakeGpu} over an in-process pipe: payloads across chunk
 * boundaries in both directions, byte-exact, and the stream left in step (the next frame is what
 * the reader sees next) when a request ends mid-payload or a copy fails.
 */
@Timeout(60)
class DevicePipeTest {
    private static final int CHUNK = 64 << 10;
    private static final int LEN = 3 * CHUNK + 4003; // four chunks, the last one short
    private static final byte[] TRAILER = {1, 2, 3, 4, 5, 6, 7, 8};

    private final FakeGpu gpu = new FakeGpu();
    private final DevicePipe pipe = new DevicePipe(gpu, CHUNK, 2);
    private final DeviceAllocation device = FakeGpu.allocateDevice(LEN);
    private final InputStage in = new InputStage(16 << 10);
    private final Watched watch = new Watched() {
        @Override
        boolean busy() {
            return true;
        }

        @Override
        void kill(String reason) {}
    };

    @AfterEach
    void close() {
        FakeGpu.FAIL_STAGED_COPIES.set(0);
        FakeGpu.STAGED_COPIES_BEFORE_FAILURE.set(0);
        pipe.close();
        device.close();
    }

    @Test
    void shouldReceiveAPayloadIntoDeviceMemoryAndLeaveTheNextFrameUnread() throws Exception {
        byte[] payload = Bytes.random(LEN, 1);
        Pipe p = Pipe.open();
        CompletableFuture<Void> writer = writeAsync(p, payload, TRAILER);
        in.fill(p.source(), 1000, 1000, watch); // part of the payload already staged, as after a status frame
        long copies = FakeGpu.STAGED_COPIES.get();
        assertNull(pipe.receive(p.source(), in, watch, device.address(), LEN, null, 0));
        assertEquals(copies + 4, FakeGpu.STAGED_COPIES.get(), "one copy per chunk");
        assertArrayEquals(payload, Bytes.at(device.address(), LEN));
        assertTrailerNext(p);
        writer.get(10, TimeUnit.SECONDS);
    }

    @Test
    void shouldDropTheRestOfThePayloadOnceTheRequestEnded() throws Exception {
        fill(device.address(), LEN, (byte) 0x5A);
        byte[] payload = Bytes.random(LEN, 2);
        Pipe p = Pipe.open();
        CompletableFuture<Void> writer = writeAsync(p, payload, TRAILER);
        // ends after two chunks were taken: isDone is asked before the payload and after each chunk
        AtomicInteger asked = new AtomicInteger();
        Submission ending = (Submission) Proxy.newProxyInstance(Submission.class.getClassLoader(),
                new Class<?>[] {Submission.class}, (proxy, m, args) -> {
                    if (!m.getName().equals("isDone")) {
                        throw new UnsupportedOperationException(m.getName());
                    }
                    return asked.incrementAndGet() > 2;
                });
        assertNull(pipe.receive(p.source(), in, watch, device.address(), LEN, ending, 0));
        byte[] got = Bytes.at(device.address(), LEN);
        for (int i = 0; i < LEN; i++) {
            assertEquals(i < 2 * CHUNK ? payload[i] : (byte) 0x5A, got[i], "byte " + i);
        }
        assertTrailerNext(p);
        writer.get(10, TimeUnit.SECONDS);
    }

    @Test
    void shouldReportAFailedCopyKeepTheStreamInStepAndWorkAgain() throws Exception {
        byte[] payload = Bytes.random(LEN, 3);
        Pipe p = Pipe.open();
        CompletableFuture<Void> writer = writeAsync(p, payload, TRAILER, payload, TRAILER);
        FakeGpu.STAGED_COPIES_BEFORE_FAILURE.set(1);
        FakeGpu.FAIL_STAGED_COPIES.set(1);
        String failure = pipe.receive(p.source(), in, watch, device.address(), LEN, null, 0);
        assertNotNull(failure);
        assertTrue(failure.contains("injected copy failure"), failure);
        assertTrailerNext(p);
        assertNull(pipe.receive(p.source(), in, watch, device.address(), LEN, null, 0), "a new stager after the failure");
        assertArrayEquals(payload, Bytes.at(device.address(), LEN));
        assertTrailerNext(p);
        writer.get(10, TimeUnit.SECONDS);
    }

    @Test
    void shouldSendExactlyThePayloadFromDeviceMemory() throws Exception {
        byte[] payload = Bytes.random(LEN, 4);
        NativeMemory.wrap(device.address(), LEN).put(payload);
        Pipe p = Pipe.open();
        CompletableFuture<byte[]> reader = CompletableFuture.supplyAsync(() -> readFully(p, LEN + 1));
        pipe.beginSend(device.address(), LEN);
        pipe.finishSend(p.sink(), watch);
        p.sink().write(ByteBuffer.wrap(new byte[] {9}));
        byte[] got = reader.get(10, TimeUnit.SECONDS);
        byte[] expected = java.util.Arrays.copyOf(payload, LEN + 1);
        expected[LEN] = 9;
        assertArrayEquals(expected, got, "the payload and nothing else, then what follows");
        assertTrue(pipe.isReusable());
    }

    @Test
    void shouldSendAPrefetchedPayloadAndRedoOneThatWasNotTheNext() throws Exception {
        try (DeviceAllocation second = FakeGpu.allocateDevice(LEN)) {
            byte[] a = Bytes.random(LEN, 5);
            byte[] b = Bytes.random(LEN, 6);
            NativeMemory.wrap(device.address(), LEN).put(a);
            NativeMemory.wrap(second.address(), LEN).put(b);
            Pipe p = Pipe.open();
            CompletableFuture<byte[]> reader = CompletableFuture.supplyAsync(() -> readFully(p, 4 * LEN));
            assertFalse(pipe.beginSend(device.address(), LEN));
            pipe.prefetch(second.address(), LEN);
            pipe.finishSend(p.sink(), watch);
            assertTrue(pipe.beginSend(second.address(), LEN), "the payload prefetched comes next");
            pipe.prefetch(device.address(), LEN); // but it is not the next one sent: dropped, then begun afresh
            pipe.finishSend(p.sink(), watch);
            assertFalse(pipe.beginSend(second.address() + 1, LEN - 1));
            pipe.finishSend(p.sink(), watch);
            assertFalse(pipe.beginSend(device.address(), LEN)); // no prefetch outstanding any more
            pipe.prefetch(second.address(), LEN);
            pipe.dropPrefetch(); // its part was reported unsent
            pipe.finishSend(p.sink(), watch);
            p.sink().write(ByteBuffer.wrap(new byte[] {9}));
            byte[] got = reader.get(10, TimeUnit.SECONDS);
            byte[] expected = new byte[4 * LEN];
            System.arraycopy(a, 0, expected, 0, LEN);
            System.arraycopy(b, 0, expected, LEN, LEN);
            System.arraycopy(b, 1, expected, 2 * LEN, LEN - 1);
            System.arraycopy(a, 0, expected, 3 * LEN - 1, LEN);
            expected[4 * LEN - 1] = 9;
            assertArrayEquals(expected, got, "each payload whole and in order, then what follows");
            assertTrue(pipe.isReusable());
        }
    }

    @Test
    void shouldReadTheNextPayloadBeforeTheLastCopiesOfOneAreSettled() throws Exception {
        try (DeviceAllocation second = FakeGpu.allocateDevice(LEN)) {
            byte[] a = Bytes.random(LEN, 7);
            byte[] b = Bytes.random(LEN, 8);
            Pipe p = Pipe.open();
            CompletableFuture<Void> writer = writeAsync(p, a, b, TRAILER);
            pipe.receiveUnsettled(p.source(), in, watch, device.address(), LEN, null, 0);
            assertTrue(pipe.hasUnsettled());
            pipe.receiveUnsettled(p.source(), in, watch, second.address(), LEN, null, 0);
            assertNull(pipe.settle(), "the first payload");
            assertArrayEquals(a, Bytes.at(device.address(), LEN));
            assertNull(pipe.settle(), "the second payload");
            assertArrayEquals(b, Bytes.at(second.address(), LEN));
            assertFalse(pipe.hasUnsettled());
            assertTrailerNext(p);
            assertTrue(pipe.isReusable());
            writer.get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void shouldFailBothUnsettledPayloadsWhenTheOlderOnesLastCopyFailsAndKeepTheStreamInStep() throws Exception {
        try (DeviceAllocation second = FakeGpu.allocateDevice(LEN)) {
            byte[] a = Bytes.random(LEN, 9);
            Pipe p = Pipe.open();
            CompletableFuture<Void> writer = writeAsync(p, a, a, TRAILER, a, TRAILER);
            FakeGpu.STAGED_COPIES_BEFORE_FAILURE.set(3); // the first payload's fourth (last) copy fails
            FakeGpu.FAIL_STAGED_COPIES.set(1);
            pipe.receiveUnsettled(p.source(), in, watch, device.address(), LEN, null, 0);
            pipe.receiveUnsettled(p.source(), in, watch, second.address(), LEN, null, 0);
            String first = pipe.settle();
            String next = pipe.settle();
            assertNotNull(first, "the payload whose copy failed");
            assertTrue(first.contains("injected copy failure"), first);
            assertNotNull(next, "the payload read behind it, whose copies went with the stager");
            assertTrailerNext(p);
            assertNull(pipe.receive(p.source(), in, watch, device.address(), LEN, null, 0), "a new stager after the failure");
            assertArrayEquals(a, Bytes.at(device.address(), LEN));
            assertTrailerNext(p);
            writer.get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void shouldLeaveNothingToSettleWhenThePeerClosesInsideAPayloadAndReceiveAgain() throws Exception {
        byte[] payload = Bytes.random(LEN, 10);
        Pipe cut = Pipe.open();
        CompletableFuture<Void> closing = writeAsync(cut, java.util.Arrays.copyOf(payload, 2 * CHUNK + 10))
                .thenRun(() -> TcpServer.closeQuietly(cut.sink()));
        assertThrows(java.io.EOFException.class,
                () -> pipe.receive(cut.source(), in, watch, device.address(), LEN, null, 0));
        closing.get(10, TimeUnit.SECONDS);
        assertFalse(pipe.hasUnsettled(), "the payload cut short is not waiting to be settled");
        assertTrue(pipe.isReusable(), "every copy is done: the pipe goes back to the pool");
        Pipe p = Pipe.open();
        CompletableFuture<Void> writer = writeAsync(p, payload, TRAILER);
        assertNull(pipe.receive(p.source(), in, watch, device.address(), LEN, null, 0), "the next connection's payload");
        assertArrayEquals(payload, Bytes.at(device.address(), LEN));
        assertTrailerNext(p);
        writer.get(10, TimeUnit.SECONDS);
    }

    private void assertTrailerNext(Pipe p) throws IOException {
        in.fill(p.source(), TRAILER.length, TRAILER.length, watch);
        byte[] t = new byte[TRAILER.length];
        in.buf.get(in.rpos, t);
        in.skip(TRAILER.length);
        assertArrayEquals(TRAILER, t, "the frame after the payload comes next");
    }

    private static CompletableFuture<Void> writeAsync(Pipe p, byte[]... parts) {
        return CompletableFuture.runAsync(() -> {
            try {
                for (byte[] b : parts) {
                    ByteBuffer buf = ByteBuffer.wrap(b);
                    while (buf.hasRemaining()) {
                        p.sink().write(buf);
                    }
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    private static byte[] readFully(Pipe p, int n) {
        ByteBuffer b = ByteBuffer.allocate(n);
        try {
            while (b.hasRemaining()) {
                if (p.source().read(b) < 0) {
                    break;
                }
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return b.array();
    }

    private static void fill(long address, int n, byte v) {
        byte[] b = new byte[n];
        java.util.Arrays.fill(b, v);
        NativeMemory.wrap(address, n).put(b);
    }
}
