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
 * Moves payloads between device memory and a socket through a ring of pinned host chunks, with the
 * copies asynchronous on a {@link DeviceStager}'s stream and overlapped with the socket I/O. The
 * ring runs on across payloads, so the copies of one payload overlap the socket I/O of the one
 * before it:
 *
 * <ul>
 *   <li>send (device to socket): chunk k is written to the socket as soon as its copy is done,
 *       while the copies of the chunks after it run, and its buffer then takes the next copy; a
 *       payload {@linkplain #prefetch prefetched} behind the one being sent takes the chunks its
 *       predecessor leaves free, so its first chunk is ready when its turn comes;
 *   <li>receive (socket to device): chunk k is read from the socket into its buffer and its copy to
 *       the device enqueued, then chunk k + 1 is read while it runs; a buffer is reused only once
 *       its copy is done. {@link #receiveUnsettled} returns with the last copies still running, so
 *       the next payload is read meanwhile; {@link #settle} then waits for them (payloads settle in
 *       the order they were received).
 * </ul>
 *
 * A device pointer never reaches the socket and no copy is synchronous or pageable. A copy that
 * fails never desynchronises the stream on the receive side (the rest of the payload is read and
 * dropped); on the send side a failure of the first chunk happens before anything is written, and a
 * later one leaves the payload short, so the caller closes the connection. After a failure the
 * stager is closed and a new one opened on next use: the copies of a prefetched payload are then
 * redone when it is begun, and every payload received and not yet settled fails. Confined to one
 * thread at a time (its user).
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
    private final long[] owner; // receive: the serial of the payload whose copy the chunk holds
    private DeviceStager stager;
    private boolean closed;

    // send: chunk k holds sequence numbers k, k + chunks, ... across payloads
    private long txWritten; // chunks written to the socket
    private long txIssued; // chunks whose copies were enqueued
    private long curSrc; // the payload being sent
    private long curLength;
    private long curIssued; // its bytes whose copies were enqueued
    private long curEnd; // the sequence number after its last chunk
    private boolean hasNext; // a payload prefetched behind it
    private boolean nextFailed; // a copy of it could not be enqueued: it is begun afresh
    private long nextSrc;
    private long nextLength;
    private long nextIssued;

    // receive: payloads are numbered from 1; those after rxSettled still have their outcome to give
    private long rxSeq; // chunks filled
    private long rxSerial; // payloads received
    private long rxSettled; // payloads settled
    private final String[] rxFailure = new String[2]; // why payload p (unsettled) failed, at p & 1

    DevicePipe(DeviceMemoryProvider provider, int chunkBytes, int chunks) {
        this.provider = provider;
        this.chunkBytes = chunkBytes;
        this.chunks = chunks;
        this.pinned = provider.allocatePinned((long) chunkBytes * chunks);
        this.chunkAddress = new long[chunks];
        this.chunkView = new ByteBuffer[chunks];
        this.ticket = new long[chunks];
        this.chunkLength = new int[chunks];
        this.owner = new long[chunks];
        for (int k = 0; k < chunks; k++) {
            chunkAddress[k] = pinned.address() + (long) k * chunkBytes;
            chunkView[k] = NativeMemory.wrap(chunkAddress[k], chunkBytes);
        }
    }

    /** Whether the pipe may serve another user: not closed, no copy in flight, nothing to settle. */
    boolean isReusable() {
        if (closed || hasNext || rxSerial != rxSettled) {
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
     * Starts sending {@code length} bytes of device memory at {@code src}: takes over its prefetched
     * copies (when it is the payload {@linkplain #prefetch prefetched}) or enqueues the first chunks'
     * copies, and waits for the first. Nothing is written yet, so when this throws the caller may
     * fail the one request and keep the connection.
     *
     * @return whether its copies had been prefetched
     * @throws MooncakeException when a copy cannot be enqueued or the first one failed
     */
    boolean beginSend(long src, long length) {
        try {
            boolean prefetched = hasNext && !nextFailed && nextSrc == src && nextLength == length;
            long issued = prefetched ? nextIssued : 0;
            if (!prefetched) {
                dropPrefetch();
            }
            hasNext = false;
            curSrc = src;
            curLength = length;
            curIssued = issued;
            curEnd = txWritten + (length + chunkBytes - 1) / chunkBytes;
            issue();
            if (curEnd > txWritten) {
                awaitChunk((int) (txWritten % chunks)); // its first chunk (an empty payload has none)
            }
            return prefetched;
        } catch (MooncakeException e) {
            broken(e);
            throw e;
        }
    }

    /**
     * Enqueues the copies of the payload to send after the one begun, into the chunks that one leaves
     * free (more as its chunks are written), so that its first chunk is ready when it is begun. Never
     * throws: a copy that cannot be enqueued is redone by {@link #beginSend}. Its copies read device
     * memory until it is begun or {@linkplain #dropPrefetch dropped}: keep that memory pinned. At
     * most one payload is prefetched, after {@link #beginSend} of the one before it.
     */
    void prefetch(long src, long length) {
        if (hasNext) {
            throw new IllegalStateException("a payload is prefetched already");
        }
        hasNext = true;
        nextFailed = false;
        nextSrc = src;
        nextLength = length;
        nextIssued = 0;
        if (curIssued == curLength) {
            issue(); // only the prefetched payload's copies: never throws
        }
    }

    /** Gives up the prefetched payload, if any: waits for its copies, frees its chunks. */
    void dropPrefetch() {
        if (!hasNext) {
            return;
        }
        hasNext = false;
        long first = Math.max(txWritten, curEnd); // its chunks follow the payload being sent
        for (long q = first; q < txIssued; q++) {
            int k = (int) (q % chunks);
            if (ticket[k] != 0) {
                awaitChunkQuietly(k);
            }
        }
        txIssued = Math.min(txIssued, first);
    }

    /**
     * Enqueues copies into the free chunks: the payload being sent first, then the prefetched one,
     * whose failure is only noted.
     *
     * @throws MooncakeException when a copy of the payload being sent cannot be enqueued
     */
    private void issue() {
        while (txIssued - txWritten < chunks) {
            if (curIssued < curLength) {
                curIssued += copyOut(curSrc + curIssued, curLength - curIssued);
            } else if (hasNext && !nextFailed && nextIssued < nextLength) {
                try {
                    nextIssued += copyOut(nextSrc + nextIssued, nextLength - nextIssued);
                } catch (MooncakeException e) {
                    LOG.debug("prefetching a GPU payload failed, it is staged afresh when its turn comes: {}",
                            e.getMessage());
                    nextFailed = true;
                    return;
                }
            } else {
                return;
            }
        }
    }

    /** Enqueues the copy of up to a chunk from {@code src} into the next free chunk; returns its length. */
    private int copyOut(long src, long left) {
        int k = (int) (txIssued % chunks);
        int n = (int) Math.min(chunkBytes, left);
        chunkLength[k] = n;
        ticket[k] = stager().toHost(chunkAddress[k], src, n);
        txIssued++;
        return n;
    }

    /**
     * Writes the payload begun by {@link #beginSend} to {@code ch}, each chunk once its copy is done,
     * the next copies (this payload's, then the prefetched one's) in flight meanwhile. When it
     * returns, this payload's copies are done; the prefetched one's may still run.
     *
     * @throws IOException when the socket fails (every copy is then done)
     * @throws MooncakeException when a later copy failed: the payload is short, close the connection
     */
    void finishSend(WritableByteChannel ch, Watched watch) throws IOException {
        long end = curEnd;
        try {
            while (txWritten < curEnd) {
                int k = (int) (txWritten % chunks);
                awaitChunk(k);
                ByteBuffer v = chunkView[k];
                v.limit(chunkLength[k]).position(0);
                while (v.hasRemaining()) {
                    if (ch.write(v) > 0) {
                        watch.progress();
                    }
                }
                txWritten++;
                issue(); // into the chunk just written
            }
            if (txWritten != end) {
                // a copy failed meanwhile (waiting for another payload's) and took this one's with it
                throw new MooncakeException(ErrorCode.TRANSFER_FAILED, "the GPU staging stream failed in the middle"
                        + " of a payload");
            }
        } catch (MooncakeException e) {
            broken(e);
            throw e;
        } catch (IOException | RuntimeException | Error e) {
            abandonSend();
            throw e;
        }
    }

    /**
     * Gives up the payload begun by {@link #beginSend} (its connection died before it was written)
     * and the prefetched one: waits for their copies.
     */
    void abandonSend() {
        hasNext = false;
        quiesce();
        resetSend();
    }

    /** Forgets the chunks of the payload being sent that are not written (their copies are over or lost). */
    private void resetSend() {
        txIssued = txWritten;
        curIssued = curLength;
        curEnd = txWritten;
    }

    // ------------------------------------------------------------------ socket to device

    /**
     * Reads a payload of {@code length} bytes (first what {@code in} holds, then the socket) into
     * device memory at {@code dst} and waits for its copies. The whole payload is always consumed, so
     * the stream stays in step; once request {@code i} of {@code s} has ended (never, when {@code s}
     * is null) the rest is read and dropped.
     *
     * @return null when every byte is in device memory, or why a copy failed (the rest dropped)
     * @throws IOException when the socket fails
     */
    String receive(ReadableByteChannel ch, InputStage in, Watched watch, long dst, long length, Submission s, int i)
            throws IOException {
        receiveUnsettled(ch, in, watch, dst, length, s, i);
        return settle();
    }

    /**
     * As {@link #receive}, but returns once the whole payload is read, the copies of its last chunks
     * possibly still running: {@link #settle} gives its outcome. At most one payload received before
     * it may be unsettled; its copies are waited for here only where this one needs their chunks.
     *
     * @throws IOException when the socket fails (every copy is then done; this payload needs no
     *     settling, one received before it still does)
     * @throws IllegalStateException when two payloads are unsettled already
     */
    void receiveUnsettled(ReadableByteChannel ch, InputStage in, Watched watch, long dst, long length,
            Submission s, int i) throws IOException {
        if (rxSerial - rxSettled >= 2) {
            throw new IllegalStateException("settle the payloads received before reading another one");
        }
        long me = ++rxSerial;
        int slot = (int) (me & 1);
        rxFailure[slot] = null;
        boolean drop = s != null && s.isDone(i);
        long off = 0;
        try {
            while (off < length) {
                int n = (int) Math.min(chunkBytes, length - off);
                int k = (int) (rxSeq % chunks);
                if (!drop && rxFailure[slot] == null) {
                    awaitChunkQuietly(k); // its buffer is free once its last copy is done (a failure fails me too)
                }
                if (drop || rxFailure[slot] != null) {
                    in.skipFully(ch, n, watch);
                } else {
                    fillChunk(ch, in, watch, k, n);
                    try {
                        ticket[k] = stager().toDevice(dst + off, chunkAddress[k], n);
                        owner[k] = me;
                        rxSeq++;
                    } catch (MooncakeException e) {
                        broken(e);
                    }
                }
                off += n;
                if (!drop && s != null && s.isDone(i)) {
                    drop = true;
                }
            }
        } catch (IOException | RuntimeException | Error e) {
            quiesce();
            rxSerial = me - 1; // never read whole: nothing to settle (the connection is going away)
            throw e;
        }
    }

    /** Whether a payload received by {@link #receiveUnsettled} has its outcome still to give. */
    boolean hasUnsettled() {
        return rxSerial != rxSettled;
    }

    /**
     * Waits for the copies of the oldest payload received and not yet settled.
     *
     * @return null when every byte of it is in device memory, or why not
     * @throws IllegalStateException when nothing is unsettled
     */
    String settle() {
        if (rxSerial == rxSettled) {
            throw new IllegalStateException("no received payload to settle");
        }
        long p = rxSettled + 1;
        for (int k = 0; k < chunks; k++) {
            if (ticket[k] != 0 && owner[k] == p) {
                awaitChunkQuietly(k);
            }
        }
        rxSettled = p;
        int slot = (int) (p & 1);
        String failure = rxFailure[slot];
        rxFailure[slot] = null;
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
        for (long p = rxSettled + 1; p <= rxSerial; p++) {
            int slot = (int) (p & 1);
            if (rxFailure[slot] == null) {
                rxFailure[slot] = e.getMessage(); // its copies' outcome is lost with the stager
            }
        }
        // the copies of the payload being sent are lost (the caller is told), a prefetched one is redone
        nextFailed = hasNext;
        resetSend();
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
