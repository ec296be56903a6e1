package io.mooncake4j.transport.tcp;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceMemoryProvider;
import io.mooncake4j.spi.DeviceStager;
import io.mooncake4j.spi.Submission;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Moves one payload at a time between device memory and a socket through a ring of pinned host
 * chunks, with the copies asynchronous on a {@link DeviceStager}'s stream and overlapped with the
 * socket I/O:
 *
 * <ul>
 *   <li>send (device to socket): the copies of the first chunks are enqueued at once; chunk k is
 *       written to the socket as soon as its copy is done, while the copies of the chunks after it
 *       run, and its buffer then takes the copy of chunk k + chunks;
 *   <li>receive (socket to device): chunk k is read from the socket into its buffer and its copy to
 *       the device enqueued, then chunk k + 1 is read while it runs; a buffer is reused only once
 *       its copy is done, and the payload ends when every copy is done (its bytes are in device
 *       memory).
 * </ul>
 *
 * A device pointer never reaches the socket and no copy is synchronous or pageable. A copy that
 * fails never desynchronises the stream on the receive side (the rest of the payload is read and
 * dropped); on the send side a failure of the first chunk happens before anything is written, and a
 * later one leaves the payload short, so the caller closes the connection. After a failure the
 * stager is closed and a new one opened on next use. Confined to one thread at a time (its user).
 */
final class DevicePipe implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DevicePipe.class);

    private final DeviceMemoryProvider provider;
    private final DeviceAllocation pinned;
    private final int chunkBytes;
    private final int chunks;
    private final long[] chunkAddress;
    private final ByteBuffer[] chunkView;
    private final long[] ticket; // the copy in flight on each chunk, 0 when none
    private final int[] chunkLength;
    private DeviceStager stager;
    private boolean closed;

    // the payload being sent
    private long sendSrc;
    private long sendLength;
    private long sendIssued; // bytes whose copies were enqueued
    private long sendChunksIssued;
    private long sendChunksWritten;

    DevicePipe(DeviceMemoryProvider provider, int chunkBytes, int chunks) {
        this.provider = provider;
        this.chunkBytes = chunkBytes;
        this.chunks = chunks;
        this.pinned = provider.allocatePinned((long) chunkBytes * chunks);
        this.chunkAddress = new long[chunks];
        this.chunkView = new ByteBuffer[chunks];
        this.ticket = new long[chunks];
        this.chunkLength = new int[chunks];
        for (int k = 0; k < chunks; k++) {
            chunkAddress[k] = pinned.address() + (long) k * chunkBytes;
            chunkView[k] = NativeMemory.wrap(chunkAddress[k], chunkBytes);
        }
    }

    /** Whether the pipe may serve another user: not closed, no copy in flight. */
    boolean isReusable() {
        if (closed) {
            return false;
        }
        for (long t : ticket) {
            if (t != 0) {
                return false;
            }
        }
        return true;
    }

    // ------------------------------------------------------------------ device to socket

    /**
     * Starts sending {@code length} bytes of device memory at {@code src}: enqueues the first chunks'
     * copies and waits for the first. Nothing is written yet, so when this throws the caller may
     * fail the one request and keep the connection.
     *
     * @throws MooncakeException when a copy cannot be enqueued or the first one failed
     */
    void beginSend(long src, long length) {
        sendSrc = src;
        sendLength = length;
        sendIssued = 0;
        sendChunksIssued = 0;
        sendChunksWritten = 0;
        try {
            while (sendChunksIssued < chunks && sendIssued < length) {
                issueSend();
            }
            awaitChunk(0);
        } catch (MooncakeException e) {
            broken(e);
            throw e;
        }
    }

    private void issueSend() {
        int k = (int) (sendChunksIssued % chunks);
        int n = (int) Math.min(chunkBytes, sendLength - sendIssued);
        chunkLength[k] = n;
        ticket[k] = stager().toHost(chunkAddress[k], sendSrc + sendIssued, n);
        sendIssued += n;
        sendChunksIssued++;
    }

    /**
     * Writes the payload begun by {@link #beginSend} to {@code ch}, each chunk once its copy is done,
     * the next copies in flight meanwhile.
     *
     * @throws IOException when the socket fails
     * @throws MooncakeException when a later copy failed: the payload is short, close the connection
     */
    void finishSend(WritableByteChannel ch, Watched watch) throws IOException {
        try {
            while (sendChunksWritten < sendChunksIssued) {
                int k = (int) (sendChunksWritten % chunks);
                awaitChunk(k);
                ByteBuffer v = chunkView[k];
                v.limit(chunkLength[k]).position(0);
                while (v.hasRemaining()) {
                    if (ch.write(v) > 0) {
                        watch.progress();
                    }
                }
                sendChunksWritten++;
                if (sendIssued < sendLength) {
                    issueSend(); // into the chunk just written
                }
            }
        } catch (MooncakeException e) {
            broken(e);
            throw e;
        } finally {
            quiesce();
        }
    }

    /** Gives up the payload begun by {@link #beginSend} (its connection died before it was written). */
    void abandonSend() {
        quiesce();
    }

    // ------------------------------------------------------------------ socket to device

    /**
     * Reads a payload of {@code length} bytes (first what {@code in} holds, then the socket) into
     * device memory at {@code dst}. The whole payload is always consumed, so the stream stays in
     * step; once request {@code i} of {@code s} has ended (never, when {@code s} is null) the rest
     * is read and dropped.
     *
     * @return null when every byte is in device memory, or why a copy failed (the rest dropped)
     * @throws IOException when the socket fails
     */
    String receive(ReadableByteChannel ch, InputStage in, Watched watch, long dst, long length, Submission s, int i)
            throws IOException {
        String failure = null;
        boolean drop = s != null && s.isDone(i);
        long off = 0;
        try {
            for (int k = 0; off < length; k = (k + 1) % chunks) {
                int n = (int) Math.min(chunkBytes, length - off);
                if (drop || failure != null) {
                    in.skipFully(ch, n, watch);
                } else {
                    failure = awaitChunkQuietly(k); // its buffer is free once its last copy is done
                    if (failure == null) {
                        fillChunk(ch, in, watch, k, n);
                        try {
                            ticket[k] = stager().toDevice(dst + off, chunkAddress[k], n);
                        } catch (MooncakeException e) {
                            failure = e.getMessage();
                            broken(e);
                        }
                    } else {
                        in.skipFully(ch, n, watch);
                    }
                }
                off += n;
                if (!drop && s != null && s.isDone(i)) {
                    drop = true;
                }
            }
            for (int k = 0; k < chunks && failure == null; k++) {
                failure = awaitChunkQuietly(k);
            }
        } finally {
            quiesce();
        }
        return failure;
    }

    /** Reads {@code n} bytes into chunk {@code k}: what {@code in} holds, then straight from the socket. */
    private void fillChunk(ReadableByteChannel ch, InputStage in, Watched watch, int k, int n) throws IOException {
        int got = in.drainTo(chunkAddress[k], n);
        ByteBuffer v = chunkView[k];
        v.limit(n).position(got);
        while (v.hasRemaining()) {
            if (ch.read(v) < 0) {
                throw new EOFException("peer closed the connection inside a payload");
            }
            watch.progress();
        }
    }

    // ------------------------------------------------------------------ copies

    private DeviceStager stager() {
        if (closed) {
            throw new MooncakeException(ErrorCode.CLOSED, "the GPU staging buffers were freed");
        }
        if (stager == null) {
            stager = provider.openStager();
        }
        return stager;
    }

    private void awaitChunk(int k) {
        long t = ticket[k];
        if (t != 0) {
            stager.await(t);
            ticket[k] = 0;
        }
    }

    /** Null once chunk {@code k}'s copy is done, or why it failed (the stager is then dropped). */
    private String awaitChunkQuietly(int k) {
        try {
            awaitChunk(k);
            return null;
        } catch (MooncakeException e) {
            broken(e);
            return e.getMessage();
        }
    }

    /** Waits for every copy in flight (a failure was reported already), so the chunks are free. */
    private void quiesce() {
        for (int k = 0; k < chunks; k++) {
            if (ticket[k] != 0) {
                awaitChunkQuietly(k);
                ticket[k] = 0;
            }
        }
    }

    /** A copy failed: the stager's streams may be unusable, so a new one is opened on next use. */
    private void broken(MooncakeException e) {
        DeviceStager st = stager;
        stager = null;
        Arrays.fill(ticket, 0);
        if (st != null) {
            LOG.debug("GPU staging copy failed, reopening the stager: {}", e.getMessage());
            closeStager(st);
        }
    }

    private static void closeStager(DeviceStager st) {
        try {
            st.close();
        } catch (RuntimeException e) {
            LOG.warn("closing a device stager failed", e);
        }
    }

    /** Closes the stager (waiting, bounded, for its copies) and frees the pinned chunks. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (stager != null) {
            closeStager(stager);
            stager = null;
        }
        pinned.close();
    }
}
