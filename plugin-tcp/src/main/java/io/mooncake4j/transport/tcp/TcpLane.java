package io.mooncake4j.transport.tcp;

import io.mooncake4j.MooncakeException;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.spi.PeerAuthenticator;
import io.mooncake4j.spi.Submission;
import java.io.IOException;
import java.net.StandardSocketOptions;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One persistent connection to a peer's data server, with a sender thread and (protocol v2) a
 * receiver thread. This class runs the send side and ties the parts together:
 *
 * <ul>
 *   <li>{@link LaneHandoff}: submitting threads hand a batch to the lane as (submission, start lane);
 *   <li>the send side walks the {@link StripePlan}, records each part in the {@link InflightRing} and
 *       gathers headers and WRITE payloads in the {@link GatherWriter};
 *   <li>the {@link LaneReceiver} matches each answer with the ring's oldest part and completes it;
 *   <li>{@link TcpConnection}: the socket, watched for stalls.
 * </ul>
 *
 * <p>Caller-runs send: a small batch for an idle lane is sent by the submitting thread itself
 * ({@link #tryRunHere}), with the sender's code under the send side's lock, saving one thread wake-up.
 *
 * <p>Protocol v1 has no status frames: the sender runs each part to its end before the next one, and
 * there is no receiver thread.
 *
 * <p>Every part of this lane's plan of a batch is reported exactly once: answered, failed with its
 * connection, or dropped unsent (the batch was aborted, its request ended, the transport closed).
 * When the connection fails, every part in the ring ends FAILED (CANCELED when the transport
 * closes) and the next part reconnects. The ring is drained by the receiver as it exits and then by
 * the sender after joining the receiver, so a slot is never completed twice. Aborting a batch never
 * closes the connection: only its unsent parts are dropped.
 */
final class TcpLane {
    private static final Logger LOG = LoggerFactory.getLogger(TcpLane.class);
    private static final int MAX_CONNECTS_PER_BATCH = 2;
    private static final String CLOSED_REASON = "tcp transport closed";
    private static final String ABORTED_REASON = "dropped before it was sent: the engine gave up on the batch";
    private static final String ENDED_REASON = "dropped before it was sent: the request had ended";

    private final TcpTransport transport;
    private final TcpPeer peer;
    private final int index;
    private final TcpCounters counters;
    private final LaneHandoff handoff;
    private final InflightRing ring = new InflightRing();
    private final LaneHandoff.Dropped dropAborted =
            (s, start, skip) -> failMine(s, start, skip, TransferStatus.CANCELED, ABORTED_REASON);
    private final LaneHandoff.Dropped dropClosed =
            (s, start, skip) -> failMine(s, start, skip, TransferStatus.CANCELED, CLOSED_REASON);

    /**
     * The send side: whoever holds it may use the plan and the writer, append to the ring and write
     * to the connection. The sender holds it while it works (not while it parks); a submitting thread
     * holds it for a caller-run ({@link #tryRunHere}). Retiring a connection happens only under it.
     */
    private final ReentrantLock sendLock = new ReentrantLock();
    private final StripePlan plan = new StripePlan();
    /** Looks one part past {@link #plan}, for the next GPU WRITE payload to prefetch. */
    private final StripePlan ahead = new StripePlan();
    private final GatherWriter writer;
    /** GPU WRITE payloads go out through it; acquired on the first one, under the send lock. */
    private DevicePipe sendPipe;

    /** The receiver thread's (the sender's in protocol v1, where there is no receiver). */
    private final LaneReceiver receiver;

    private volatile TcpConnection conn;
    private volatile SocketChannel connecting;
    private final Object connectLock = new Object();

    TcpLane(TcpTransport transport, TcpPeer peer, int index) {
        this.transport = transport;
        this.peer = peer;
        this.index = index;
        this.counters = transport.counters;
        this.writer = new GatherWriter(counters);
        this.receiver = new LaneReceiver(ring, counters, transport.staging);
        this.handoff = new LaneHandoff(
                this::senderLoop, "mc-tcp-send-" + transport.dataPort() + "-" + peer.label + "-" + index);
    }

    @Override
    public String toString() {
        return peer.label + " lane " + index;
    }

    TcpConnection connection() {
        return conn;
    }

    /** Whether a part is in flight or being written (silence then means a stall). */
    boolean busy() {
        return !ring.isEmpty() || writer.writing;
    }

    // ------------------------------------------------------------------ hand-off

    /** Queues a batch; the sender thread takes it. Never blocks on I/O. */
    void enqueue(Submission s, int start) {
        if (!handoff.offer(s, start, 0)) {
            failMine(s, start, 0, TransferStatus.CANCELED, CLOSED_REASON);
        }
    }

    private void senderLoop() {
        while (true) {
            sendLock.lock();
            try {
                if (senderStep()) {
                    return;
                }
            } finally {
                sendLock.unlock();
            }
            if (handoff.parkSender()) {
                LockSupport.park(this);
            }
            handoff.senderAwake();
        }
    }

    /**
     * Under sendLock: runs the next queued batch and everything after it; when the queue is empty,
     * flushes and retires a dead connection. Returns true when the lane is stopping and the sender
     * is done.
     */
    private boolean senderStep() {
        while (true) {
            boolean more = handoff.take();
            Submission s = handoff.takenSub;
            if (s != null) {
                int start = handoff.takenStart;
                int skip = handoff.takenSkip;
                try {
                    runBatch(s, start, skip, handoff.takenFastFail);
                } catch (RuntimeException | Error e) {
                    LOG.error("{}: sender failed unexpectedly", this, e);
                    TcpConnection c = conn;
                    if (c != null) {
                        c.kill("sender failed: " + e);
                    }
                    failMine(s, start, skip, TransferStatus.FAILED, "tcp sender failed: " + e);
                }
                continue;
            }
            // idle: push out what is gathered before sleeping
            TcpConnection c = conn;
            if (c != null && writer.hasPending()) {
                writer.flush(c);
            }
            if (c != null && c.dead) {
                retire(c); // fail parts the receiver's drain may have missed
            }
            if (!more) {
                TcpConnection last = conn;
                if (last != null) {
                    last.kill(CLOSED_REASON);
                    retire(last);
                }
                return true;
            }
            return false;
        }
    }

    // ------------------------------------------------------------------ caller-runs send

    /**
     * Sends this lane's parts of a small batch on the submitting thread, saving the hand-off to the
     * sender (one thread wake-up). Only when the lane is idle (nothing queued, no batch being sent,
     * nothing in flight, the send side free), connected and alive, protocol v2, and the batch's
     * headers and payloads ({@code maxParts}, {@code bytes}: upper bounds of this lane's share) fit in
     * the socket's send buffer: with nothing in flight the target has read everything sent before, so
     * the write does not wait for the peer and submit still returns promptly. The caller then appends
     * to the ring and writes with the sender's own code, under the send side's lock. It never
     * connects, retires a live connection or waits for ring space; when the connection dies before all
     * parts are taken, the rest goes to the sender, which reconnects.
     *
     * @return false when the batch was not taken: the caller must {@link #enqueue} it
     */
    boolean tryRunHere(Submission s, int start, int maxParts, long bytes) {
        if (!peer.v2) {
            return false; // v1 runs each part to its end: the caller would wait for the answer
        }
        TcpConnection c = conn;
        if (c == null
                || c.dead
                || !ring.isEmpty()
                || bytes + (long) maxParts * TcpWire.HEADER_BYTES > c.sendBuffer) {
            return false;
        }
        Thread self = Thread.currentThread();
        // left to the sender: a lane's own thread, a thread already sending here (a completion
        // callback of this lane's caller-run submitting again), a pending interrupt (it would close
        // the channel mid-write)
        if (self instanceof LaneThread
                || sendLock.isHeldByCurrentThread()
                || self.isInterrupted()
                || !sendLock.tryLock()) {
            return false;
        }
        try {
            // under sendLock nobody else appends to the ring or retires the connection
            if (conn != c || c.dead || !ring.isEmpty() || !handoff.claimForCallerRun(s)) {
                return false;
            }
            counters.callerRuns.increment();
            int rest;
            try {
                rest = runHere(c, s, start);
            } catch (RuntimeException | Error e) {
                LOG.error("{}: caller-run send failed unexpectedly", this, e);
                c.kill("sender failed: " + e);
                failMine(s, start, 0, TransferStatus.FAILED, "tcp sender failed: " + e);
                rest = -1;
            }
            int end = handoff.endCallerRun(s, start, rest, c.dead);
            if ((end & LaneHandoff.DROP_REST) != 0) {
                failMine(s, start, rest, TransferStatus.CANCELED, dropReason());
            }
            if ((end & LaneHandoff.RETIRE_HERE) != 0) {
                retire(c);
            }
            return true;
        } finally {
            sendLock.unlock();
        }
    }

    /**
     * The caller-run of {@link #tryRunHere}: appends and flushes this lane's parts. Returns -1 when
     * done, or the number of parts taken when the connection died and the rest is the sender's.
     */
    private int runHere(TcpConnection c, Submission s, int start) {
        plan.reset(s, start, index, peer.lanes.length, transport.settings.sliceSize, peer.skipsLocalGpu());
        int taken = 0;
        try {
            while (plan.next()) {
                int i = plan.request;
                if (handoff.isCurrentAborted()) {
                    dropRest(s);
                    break;
                }
                if (s.isDone(i)) {
                    fail(s, i, TransferStatus.CANCELED, ENDED_REASON);
                } else if (transport.isClosed()) {
                    fail(s, i, TransferStatus.CANCELED, CLOSED_REASON);
                } else if (c.dead || !appendV2(c, s, i, plan.offset, plan.length)) {
                    if (writer.hasPending()) {
                        writer.flush(c); // fails on the dead connection: resets the gather
                    }
                    return taken;
                }
                taken++;
            }
            if (writer.hasPending()) {
                writer.flush(c); // also the parts appended before an abort: the target must answer them
            }
            return -1;
        } finally {
            plan.clear();
        }
    }

    /** Sends this lane's parts of one batch. */
    private void runBatch(Submission s, int start, int skip, String fastFail) {
        plan.reset(s, start, index, peer.lanes.length, transport.settings.sliceSize, peer.skipsLocalGpu());
        int connects = 0;
        String failure = fastFail;
        try {
            while (plan.next()) {
                if (skip > 0) {
                    skip--; // taken by a caller-run before its connection died
                    continue;
                }
                int i = plan.request;
                if (handoff.isCurrentAborted()) {
                    dropRest(s);
                    return;
                }
                if (s.isDone(i)) {
                    fail(s, i, TransferStatus.CANCELED, ENDED_REASON);
                    continue;
                }
                if (transport.isClosed()) {
                    fail(s, i, TransferStatus.CANCELED, CLOSED_REASON);
                    continue;
                }
                while (true) {
                    if (handoff.isCurrentAborted()) {
                        dropRest(s);
                        return;
                    }
                    if (failure != null) {
                        fail(s, i, TransferStatus.FAILED, failure);
                        break;
                    }
                    TcpConnection c = conn;
                    if (c == null || c.dead) {
                        if (c != null) {
                            retire(c);
                        }
                        if (connects++ >= MAX_CONNECTS_PER_BATCH) {
                            failure = "connection to " + peer.label + " keeps failing";
                            continue;
                        }
                        failure = connect();
                        if (failure != null) {
                            handoff.rememberConnectFailure(failure);
                        }
                        continue;
                    }
                    if (peer.v2 ? appendV2(c, s, i, plan.offset, plan.length) : runV1(c, s, i)) {
                        break;
                    }
                }
            }
        } finally {
            plan.clear();
        }
    }

    /** The batch being sent was aborted: reports the plan's current part and the rest, unsent. */
    private void dropRest(Submission s) {
        do {
            fail(s, plan.request, TransferStatus.CANCELED, ABORTED_REASON);
        } while (plan.next());
    }

    // ------------------------------------------------------------------ protocol v2 sender

    /** Records one part and gathers its bytes; false when the connection died before it was taken. */
    private boolean appendV2(TcpConnection c, Submission s, int i, long off, long len) {
        while (ring.isFull()) {
            writer.flush(c); // the target must see what it is to answer
            if (c.dead) {
                return false;
            }
            ring.awaitSpace(c);
            if (c.dead) {
                return false;
            }
        }
        if (writer.isFull()) {
            writer.flush(c);
            if (c.dead) {
                return false;
            }
        }
        boolean write = s.opcode(i) == Opcode.WRITE;
        long local = s.localAddress(i) + off;
        long remote = s.remoteAddress(i) + off;
        if (s.isDone(i)) {
            // ended (cancelled) while being read: its batch may already be reused
            fail(s, i, TransferStatus.CANCELED, ENDED_REASON);
            return true;
        }
        boolean gpu = s.localIsCuda(i); // refused ones were skipped by the plan
        if (gpu && write) {
            sendFromDevice(c, s, i, local, remote, len);
            return true;
        }
        if (ring.add(s, i, write, local, len, gpu)) {
            c.progress(); // the stall clock starts with the first part in flight
        }
        writer.addPart(len, remote, local, write);
        return true;
    }

    /**
     * A WRITE from GPU memory: the first chunk is copied to pinned memory before anything is written,
     * so a copy that fails there fails this part alone; then the header goes out with what was
     * gathered before it, and the payload follows chunk by chunk as the copies complete. Meanwhile
     * the copies of this lane's next part, when it is a GPU WRITE too, start in the chunks this one
     * leaves free, so that its first chunk is ready when its turn comes (the part stays unreported,
     * its memory pinned, until it is sent or its prefetch dropped). A copy that fails later leaves the
     * payload short: the connection is closed (its parts end FAILED with the reason) and the next part
     * reconnects.
     */
    private void sendFromDevice(TcpConnection c, Submission s, int i, long local, long remote, long len) {
        DevicePipe pipe;
        try {
            if (sendPipe == null) {
                sendPipe = transport.staging.acquire();
            }
            pipe = sendPipe;
            if (pipe.beginSend(local, len)) {
                counters.gpuPrefetchedParts.increment();
            }
        } catch (MooncakeException e) {
            fail(s, i, TransferStatus.FAILED, "GPU staging failed before anything was sent: " + e.getMessage());
            return;
        }
        if (ring.add(s, i, true, local, len, true)) {
            c.progress();
        }
        writer.addHeader(len, remote, true);
        writer.flush(c);
        if (c.dead) {
            pipe.abandonSend(); // the part is in the ring: it fails with the connection
            return;
        }
        prefetchNext(pipe, s);
        writer.writing = true;
        try {
            pipe.finishSend(c.ch, c);
            counters.bytesWritten.add(len);
        } catch (IOException e) {
            c.kill(TcpConnection.describe(e));
        } catch (MooncakeException e) {
            c.kill("a GPU staging copy failed in the middle of a WRITE payload: " + e.getMessage());
        } finally {
            writer.writing = false;
        }
    }

    /** Starts the copies of the plan's next part when it is a GPU WRITE still to send. */
    private void prefetchNext(DevicePipe pipe, Submission s) {
        ahead.copyFrom(plan);
        try {
            if (ahead.next()) {
                int j = ahead.request;
                if (s.opcode(j) == Opcode.WRITE && s.localIsCuda(j) && !s.isDone(j)) {
                    pipe.prefetch(s.localAddress(j) + ahead.offset, ahead.length);
                }
            }
        } finally {
            ahead.clear();
        }
    }

    /** A part is reported unsent: the copies prefetched for it (if any) are waited for first. */
    private void dropPrefetch() {
        if (sendPipe != null && sendLock.isHeldByCurrentThread()) {
            sendPipe.dropPrefetch();
        }
    }

    // ------------------------------------------------------------------ protocol v1 (sender only)

    /** Runs one part to its end on a v1 connection: no status frames, one request at a time. */
    private boolean runV1(TcpConnection c, Submission s, int i) {
        long off = plan.offset;
        long len = plan.length;
        boolean write = s.opcode(i) == Opcode.WRITE;
        long local = s.localAddress(i) + off;
        long remote = s.remoteAddress(i) + off;
        if (s.isDone(i)) {
            // ended (cancelled) while being read: its batch may already be reused
            fail(s, i, TransferStatus.CANCELED, ENDED_REASON);
            return true;
        }
        writer.writing = true;
        c.progress();
        try {
            writer.writeV1(c, len, remote, local, write);
            if (!write) {
                receiver.payload(c, s, i, local, len);
            }
            counters.partsSent.increment();
            counters.partsCompleted.increment();
            s.partDone(i, TransferStatus.COMPLETED);
        } catch (IOException e) {
            c.kill(TcpConnection.describe(e));
            fail(s, i, closedStatus(), c.reason());
        } finally {
            writer.writing = false;
        }
        return true;
    }

    // ------------------------------------------------------------------ receiver (v2)

    private void receiverLoop(TcpConnection c) {
        String reason = null;
        try {
            receiver.receive(c);
        } catch (IOException e) {
            reason = TcpConnection.describe(e);
        } catch (RuntimeException | Error e) {
            LOG.error("{}: receiver failed unexpectedly", this, e);
            reason = "tcp receiver failed: " + e;
        } finally {
            c.kill(reason == null ? "receiver stopped" : reason);
            ring.drain(closedStatus(), c.reason(), counters);
        }
    }

    // ------------------------------------------------------------------ connections

    /** Opens the connection; returns null or why it failed. Called by the sender or by warmup. */
    String connect() {
        synchronized (connectLock) {
            if (conn != null) {
                return null; // alive, or dead and about to be retired by the sender
            }
            if (transport.isClosed()) {
                return CLOSED_REASON;
            }
            SocketChannel ch = null;
            try {
                ch = SocketChannel.open();
                connecting = ch;
                ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
                ch.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
                int sb = transport.settings.socketBuffer;
                if (sb > 0) {
                    ch.setOption(StandardSocketOptions.SO_SNDBUF, sb);
                    ch.setOption(StandardSocketOptions.SO_RCVBUF, sb);
                }
                ch.socket().connect(peer.address, (int) transport.settings.connectTimeoutMillis);
                // with a secret, prove ourselves (and check the target) before the first header
                transport.peerAuthenticator().authenticateToServer(ch.socket(), PeerAuthenticator.Purpose.DATA,
                        Duration.ofMillis(transport.settings.connectTimeoutMillis));
                TcpConnection c = new TcpConnection(ch, this, counters);
                receiver.reset();
                if (peer.v2) {
                    String name = "mc-tcp-recv-" + transport.dataPort() + "-" + peer.label + "-" + index;
                    Thread r = new LaneThread(() -> receiverLoop(c), name);
                    r.setDaemon(true);
                    c.receiver = r;
                    r.start();
                }
                conn = c;
                counters.connectsOpened.increment();
                if (transport.isClosed()) {
                    c.kill(CLOSED_REASON);
                    return CLOSED_REASON;
                }
                LOG.debug("{}: connected", this);
                return null;
            } catch (IOException | RuntimeException e) {
                TcpServer.closeQuietly(ch);
                counters.connectsFailed.increment();
                return "cannot connect to "
                        + peer.label
                        + " (timeout "
                        + transport.settings.connectTimeoutMillis
                        + " ms): "
                        + e;
            } finally {
                connecting = null;
            }
        }
    }

    /** Forgets a dead connection: waits for its receiver, then fails what is left in the ring. */
    private void retire(TcpConnection c) {
        Thread r = c.receiver;
        if (r != null && r != Thread.currentThread()) {
            boolean interrupted = false;
            while (r.isAlive()) {
                try {
                    r.join(5000);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
                if (r.isAlive()) {
                    LOG.warn("{}: receiver thread still busy after its connection closed", this);
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        ring.drain(closedStatus(), c.reason(), counters);
        writer.reset();
        if (conn == c) {
            conn = null;
        }
    }

    // ------------------------------------------------------------------ abort and close

    /**
     * Drops {@code work}'s parts not yet sent on this lane, reporting each: its queued entry at once,
     * the rest of the batch being sent as soon as the send side looks at its next part. Returns at
     * once: never waits and never closes the connection, so parts already in flight (this batch's and
     * every other batch's) finish normally, and a dead peer is left to the stall watchdog.
     */
    void abort(Submission work) {
        handoff.abort(work, dropAborted);
    }

    /** Stops the lane: queued batches end CANCELED, in-flight parts end CANCELED, threads stop. */
    void close() {
        Thread snd = handoff.stop(dropClosed);
        TcpServer.closeQuietly(connecting);
        TcpConnection c = conn;
        if (c != null) {
            c.kill(CLOSED_REASON);
        }
        if (snd != null) {
            LockSupport.unpark(snd);
            TcpServer.join(snd);
        }
        if (!sendLock.isHeldByCurrentThread()) {
            sendLock.lock(); // a caller-run in progress ends (its connection is dead) before close returns
            try {
                if (snd == null || !snd.isAlive()) {
                    dropPrefetch();
                    transport.staging.release(sendPipe); // nobody sends any more
                    sendPipe = null;
                }
            } finally {
                sendLock.unlock();
            }
        }
        if (c != null) {
            TcpServer.join(c.receiver);
        }
        if (c == null || c.receiver == null || !c.receiver.isAlive()) {
            receiver.releasePipe();
        }
    }

    // ------------------------------------------------------------------ helpers

    /** Reports this lane's parts of a batch that will not be sent. */
    private void failMine(Submission s, int start, int skip, TransferStatus status, String reason) {
        StripePlan p = new StripePlan(); // rare path (abort, closing, sender crash): allocation is fine
        p.reset(s, start, index, peer.lanes.length, transport.settings.sliceSize, peer.skipsLocalGpu());
        while (p.next()) {
            if (skip > 0) {
                skip--;
                continue;
            }
            fail(s, p.request, status, reason);
        }
    }

    private void fail(Submission s, int i, TransferStatus status, String reason) {
        dropPrefetch(); // before the part's memory may be let go
        counters.partsFailed.increment();
        s.partFailed(i, status, reason);
    }

    private String dropReason() {
        return transport.isClosed() ? CLOSED_REASON : ABORTED_REASON;
    }

    private TransferStatus closedStatus() {
        return transport.isClosed() ? TransferStatus.CANCELED : TransferStatus.FAILED;
    }

    /** A lane's sender or receiver: never sends a caller-run. */
    static final class LaneThread extends Thread {
        LaneThread(Runnable task, String name) {
            super(task, name);
        }
    }
}
