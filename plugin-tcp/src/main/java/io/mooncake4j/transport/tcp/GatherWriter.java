package io.mooncake4j.transport.tcp;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A lane's outgoing bytes: request headers staged in one direct buffer and WRITE payloads as views
 * of registered memory, sent with gathering writes, many parts per system call, straight from
 * memory. Confined to the holder of the lane's send lock.
 */
final class GatherWriter {
    private static final int MAX_IOV = 128; // buffers per gathering write
    private static final int STAGE_BYTES = 32 << 10; // headers of one gathering write
    private static final long FLUSH_BYTES = 16L << 20; // write at least this often

    private final TcpCounters counters;
    private final ByteBuffer stage = ByteBuffer.allocateDirect(STAGE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    private final ByteBuffer[] stageCopies = new ByteBuffer[MAX_IOV];
    private final ByteBuffer[] iov = new ByteBuffer[MAX_IOV];
    private final WindowCache views = new WindowCache();
    private int iovCount;
    private int stagePos;
    private int runStart;
    private long pendingBytes;
    private int pendingParts;
    /** Whether a write is under way (the watchdog then expects progress). */
    volatile boolean writing;

    GatherWriter(TcpCounters counters) {
        this.counters = counters;
        for (int i = 0; i < MAX_IOV; i++) {
            stageCopies[i] = stage.duplicate();
        }
    }

    /** Whether bytes are gathered and not written yet. */
    boolean hasPending() {
        return iovCount + stagePos > 0;
    }

    /** Whether the gather must be written before another part (header and payload) is added. */
    boolean isFull() {
        return stagePos + TcpWire.HEADER_BYTES > STAGE_BYTES || iovCount + 3 > MAX_IOV || pendingBytes >= FLUSH_BYTES;
    }

    /** Gathers a v2 request header, and for a WRITE its payload. */
    void addPart(long len, long remote, long local, boolean write) {
        addHeader(len, remote, write);
        if (write) {
            closeRun();
            addPayload(local, len);
            pendingBytes += len;
        }
    }

    /**
     * Gathers a v2 request header alone; for a WRITE the caller writes the payload right after the
     * next {@link #flush} (a GPU payload, staged chunk by chunk).
     */
    void addHeader(long len, long remote, boolean write) {
        TcpWire.putHeader(stage, stagePos, len, remote, write ? TcpWire.OP_WRITE : TcpWire.OP_READ, true);
        stagePos += TcpWire.HEADER_BYTES;
        pendingBytes += TcpWire.HEADER_BYTES;
        pendingParts++;
    }

    private void addPayload(long local, long len) {
        long rem = len;
        while (rem > 0) {
            ByteBuffer v = views.view(local, rem, iovCount);
            int n = v.remaining();
            iov[iovCount++] = v;
            local += n;
            rem -= n;
        }
    }

    /** Ends the current run of staged header bytes as one gathering-write entry. */
    private void closeRun() {
        if (stagePos > runStart) {
            ByteBuffer b = stageCopies[iovCount];
            b.limit(stagePos).position(runStart);
            iov[iovCount++] = b;
            runStart = stagePos;
        }
    }

    /** Writes everything gathered; on failure kills the connection (its parts in flight then fail). */
    void flush(TcpConnection c) {
        closeRun();
        if (iovCount == 0) {
            reset();
            return;
        }
        writing = true;
        try {
            writeFully(c, iov, iovCount);
            counters.bytesWritten.add(pendingBytes);
            counters.partsSent.add(pendingParts);
        } catch (IOException e) {
            c.kill(TcpConnection.describe(e));
        } finally {
            writing = false;
            reset();
        }
    }

    /**
     * Protocol v1: writes one request (header, and for a WRITE its payload) at once, nothing else
     * gathered. The caller marks {@link #writing} for the whole exchange.
     */
    void writeV1(TcpConnection c, long len, long remote, long local, boolean write) throws IOException {
        try {
            TcpWire.putHeader(stage, 0, len, remote, write ? TcpWire.OP_WRITE : TcpWire.OP_READ, false);
            stagePos = TcpWire.HEADER_BYTES;
            closeRun();
            if (write) {
                long rem = len;
                while (rem > 0) {
                    if (iovCount == MAX_IOV) {
                        writeFully(c, iov, iovCount);
                        reset();
                    }
                    ByteBuffer v = views.view(local, rem, iovCount);
                    int n = v.remaining();
                    iov[iovCount++] = v;
                    local += n;
                    rem -= n;
                }
                writeFully(c, iov, iovCount);
                counters.bytesWritten.add(len);
            } else {
                writeFully(c, iov, iovCount);
            }
        } finally {
            reset();
        }
    }

    /** Forgets everything gathered (after a write, or when the connection died). */
    void reset() {
        for (int i = 0; i < iovCount; i++) {
            iov[i] = null;
        }
        iovCount = 0;
        stagePos = 0;
        runStart = 0;
        pendingBytes = 0;
        pendingParts = 0;
    }

    private static void writeFully(TcpConnection c, ByteBuffer[] bufs, int count) throws IOException {
        int off = 0;
        while (off < count) {
            long n = c.ch.write(bufs, off, count - off);
            if (n > 0) {
                c.progress();
            }
            while (off < count && !bufs[off].hasRemaining()) {
                off++;
            }
        }
    }
}
