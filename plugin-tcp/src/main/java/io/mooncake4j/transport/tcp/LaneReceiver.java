package io.mooncake4j.transport.tcp;

import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.spi.Submission;
import java.io.IOException;

/**
 * A lane's incoming bytes. Protocol v2: the target answers in order, so each status frame (and READ
 * payload) belongs to the ring's oldest part, which is completed and popped. Protocol v1 has no
 * receiver thread: the sender reads each READ payload itself with {@link #payload}. Confined to one
 * thread at a time (the receiver thread, or the v1 sender).
 */
final class LaneReceiver {
    private static final int STAGE_BYTES = 256 << 10;
    private static final int DIRECT_MIN = 64 << 10; // READ payloads from this size go socket->memory

    private static final String REJECTED =
            "the target rejected the request: the address range is not inside one registered buffer there, or"
                    + " the target could not stage its GPU memory (its log says which)";

    private final InflightRing ring;
    private final TcpCounters counters;
    private final InputStage stage = new InputStage(STAGE_BYTES);
    private final WindowCache views = new WindowCache();
    private final DeviceStaging staging;
    /** READ payloads into GPU memory go through it; acquired on the first one. */
    private DevicePipe pipe;

    LaneReceiver(InflightRing ring, TcpCounters counters, DeviceStaging staging) {
        this.ring = ring;
        this.counters = counters;
        this.staging = staging;
    }

    /** Gives the staging pipe back (the lane closed and its receiver ended). */
    void releasePipe() {
        staging.release(pipe);
        pipe = null;
    }

    /** Forgets unread bytes of an earlier connection. */
    void reset() {
        stage.rpos = 0;
        stage.wpos = 0;
    }

    /** Answers the ring's parts until the connection fails (v2). */
    void receive(TcpConnection c) throws IOException {
        final InputStage in = stage;
        while (true) {
            // the oldest part in flight, when known, says what follows its status frame: before a
            // large READ payload read only the frame, so the payload goes straight to memory
            int k0 = ring.oldest();
            boolean exact = k0 >= 0 && !ring.isWrite(k0) && ring.length(k0) >= DIRECT_MIN;
            in.fill(c.ch, TcpWire.STATUS_BYTES, exact ? TcpWire.STATUS_BYTES : in.capacity, c);
            int k = ring.oldest();
            if (k < 0) {
                throw new IOException("protocol error: the peer sent data with nothing in flight");
            }
            long frame = TcpWire.getLongLE(in.buf, in.rpos);
            in.rpos += TcpWire.STATUS_BYTES;
            if (!TcpWire.isStatusFrame(frame)) {
                throw new IOException(
                        "protocol error: expected a status frame, got 0x" + Long.toHexString(frame));
            }
            Submission s = ring.submission(k);
            int i = ring.request(k);
            if (TcpWire.statusCode(frame) == TcpWire.STATUS_OK) {
                String failure = null;
                if (ring.isWrite(k)) {
                    // answered: its bytes are in the target's memory
                } else if (ring.isGpu(k)) {
                    failure = gpuPayload(c, s, i, ring.address(k), ring.length(k));
                } else {
                    payload(c, s, i, ring.address(k), ring.length(k));
                }
                if (failure == null) {
                    counters.partsCompleted.increment();
                    s.partDone(i, TransferStatus.COMPLETED);
                } else {
                    counters.partsFailed.increment();
                    s.partFailed(i, TransferStatus.FAILED, failure);
                }
            } else {
                counters.partsFailed.increment();
                s.partFailed(i, TransferStatus.FAILED, REJECTED);
            }
            ring.pop();
            if (in.available() == 0) {
                in.rpos = 0;
                in.wpos = 0;
            }
        }
    }

    /**
     * Reads the READ payload of request {@code i} into GPU memory at {@code addr} through the staging
     * pipe; returns null, or why it failed (the payload is consumed either way).
     */
    private String gpuPayload(TcpConnection c, Submission s, int i, long addr, long len) throws IOException {
        counters.bytesRead.add(len);
        String failure;
        try {
            if (pipe == null) {
                pipe = staging.acquire();
            }
            failure = pipe.receive(c.ch, stage, c, addr, len, s, i);
        } catch (MooncakeException e) {
            stage.skipFully(c.ch, len, c);
            failure = e.getMessage();
        }
        return failure == null ? null : "GPU staging of a READ payload failed: " + failure;
    }

    /**
     * Reads the READ payload of request {@code i} into local memory at {@code addr}. Once the request
     * has ended (a sibling part failed, the deadline passed, the batch was cancelled) the rest of the
     * payload is read and dropped: its memory may already be the caller's again.
     */
    void payload(TcpConnection c, Submission s, int i, long addr, long len) throws IOException {
        final InputStage in = stage;
        counters.bytesRead.add(len);
        boolean drop = s.isDone(i);
        // decided on the whole payload: the rest of a large one goes direct however little is left
        boolean direct = len >= DIRECT_MIN;
        while (len > 0) {
            long n;
            if (in.available() > 0) {
                n = drop ? in.skip(len) : in.drainTo(addr, len);
            } else if (drop || !direct) {
                in.fill(c.ch, (int) Math.min(len, in.capacity), c);
                continue;
            } else {
                // the rest of the payload straight into memory, and just the next status frame
                // (another large payload is likely to follow it) into the stage
                n = in.scatterRead(c.ch, views.view(addr, len, 0), TcpWire.STATUS_BYTES, c);
            }
            addr += n;
            len -= n;
            if (!drop && len > 0 && s.isDone(i)) {
                drop = true;
            }
        }
    }
}
