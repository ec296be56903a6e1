package io.mooncake4j.transport.tcp;

import io.mooncake4j.nativeio.NativeMemory;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.ScatteringByteChannel;

/**
 * A per-connection buffer (staging memory from a {@link StagingPool}) that reads the stream in chunks, so that many small frames (headers,
 * status frames, small payloads) cost one system call. Bytes {@code [rpos, wpos)} are unread.
 * Confined to one thread.
 *
 * <p>Every byte that lands here and belongs to a payload is copied once more on its way to memory;
 * large payloads should go straight from the socket to memory instead. So a reader that expects a
 * large payload next reads only the frame before it ({@link #fill(ReadableByteChannel, int, int,
 * Watched)} with a small {@code max}), and {@link #scatterRead} takes only the next frame after the
 * payload when more large payloads are likely to follow.
 */
final class InputStage {
    final ByteBuffer buf;
    final long address;
    final int capacity;
    int rpos;
    int wpos;
    private final ByteBuffer[] pair = new ByteBuffer[2];

    /** A stage over a new direct buffer of {@code capacity} bytes. */
    InputStage(int capacity) {
        this(ByteBuffer.allocateDirect(capacity));
    }

    /** A stage over {@code buf}, a direct buffer whose memory outlives the stage. */
    InputStage(ByteBuffer buf) {
        this.buf = buf.order(ByteOrder.LITTLE_ENDIAN);
        this.address = NativeMemory.address(buf);
        this.capacity = buf.capacity();
    }

    /** Forgets every unread byte (the stage goes to another connection). */
    void clear() {
        rpos = 0;
        wpos = 0;
    }

    int available() {
        return wpos - rpos;
    }

    /**
     * Reads until at least {@code need} (at most the capacity) bytes are unread; marks progress on
     * {@code watch} after each read.
     *
     * @throws EOFException when the peer closed the stream first
     */
    void fill(ReadableByteChannel ch, int need, Watched watch) throws IOException {
        fill(ch, need, capacity, watch);
    }

    /**
     * As {@link #fill(ReadableByteChannel, int, Watched)}, but reads no further than {@code max}
     * unread bytes (at least {@code need}), so that what follows the frame stays in the socket.
     */
    void fill(ReadableByteChannel ch, int need, int max, Watched watch) throws IOException {
        if (wpos - rpos >= need) {
            return;
        }
        if (capacity - rpos < need) {
            compact();
        }
        int limit = (int) Math.min(capacity, (long) rpos + Math.max(need, max));
        while (wpos - rpos < need) {
            buf.limit(limit).position(wpos);
            int n = ch.read(buf);
            if (n < 0) {
                throw new EOFException("peer closed the connection");
            }
            wpos += n;
            watch.progress();
        }
    }

    /**
     * Reads the stream into {@code payload} first and whatever follows it (the next frames) into this
     * stage, in one system call. The stage must be empty. Returns the bytes that went to {@code
     * payload}.
     *
     * @throws EOFException when the peer closed the stream
     */
    int scatterRead(ScatteringByteChannel ch, ByteBuffer payload, Watched watch) throws IOException {
        return scatterRead(ch, payload, capacity, watch);
    }

    /**
     * As {@link #scatterRead(ScatteringByteChannel, ByteBuffer, Watched)}, taking at most {@code tail}
     * bytes after the payload (e.g. just the next header, when another large payload is likely to
     * follow it and should go straight to memory too).
     */
    int scatterRead(ScatteringByteChannel ch, ByteBuffer payload, int tail, Watched watch) throws IOException {
        rpos = 0;
        wpos = 0;
        int before = payload.position();
        buf.limit(Math.min(capacity, Math.max(1, tail))).position(0);
        pair[0] = payload;
        pair[1] = buf;
        long n = ch.read(pair, 0, 2);
        pair[0] = null;
        if (n < 0) {
            throw new EOFException("peer closed the connection inside a payload");
        }
        wpos = buf.position();
        watch.progress();
        return payload.position() - before;
    }

    /** Moves the unread bytes to the start. */
    void compact() {
        int n = wpos - rpos;
        if (n > 0 && rpos > 0) {
            NativeMemory.copy(address, address + rpos, n);
        }
        rpos = 0;
        wpos = n;
    }

    /** Copies up to {@code length} unread bytes to {@code dst}; returns how many. */
    int drainTo(long dst, long length) {
        int n = (int) Math.min(wpos - rpos, length);
        if (n > 0) {
            NativeMemory.copy(dst, address + rpos, n);
            rpos += n;
        }
        return n;
    }

    /** Reads and drops the next {@code length} bytes of the stream (those unread here first). */
    void skipFully(ReadableByteChannel ch, long length, Watched watch) throws IOException {
        length -= skip(length);
        while (length > 0) {
            fill(ch, 1, watch);
            length -= skip(length);
        }
    }

    /** Drops up to {@code length} unread bytes; returns how many. */
    int skip(long length) {
        int n = (int) Math.min(wpos - rpos, length);
        rpos += n;
        if (rpos == wpos) {
            rpos = 0;
            wpos = 0;
        }
        return n;
    }
}
