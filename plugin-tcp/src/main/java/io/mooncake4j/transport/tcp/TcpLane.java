package io.mooncake4j.transport.tcp;

import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.spi.PeerAuthenticator;
import io.mooncake4j.spi.Submission;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One persistent connection to a peer's data server, with a sender thread and (protocol v2) a
 * receiver thread.
 *
 * <p>Submitting threads hand a batch to the lane as (submission, start lane) in a queue; the sender
 * walks the {@link StripePlan}, records each part in a preallocated ring of in-flight slots (primitive
 * arrays, no object per part) and sends headers and WRITE payloads with gathering writes, many parts
 * per system call, straight from registered memory. The target answers in order, so the receiver
 * matches each status frame (and READ payload) with the ring's oldest slot and completes the part.
 *
 * <p>Caller-runs send: a small batch for an idle lane is sent by the submitting thread itself
 * ({@link #tryRunHere}), with the sender's code under the send side's lock, saving one thread wake-up.
 *
 * <p>Protocol v1 has no status frames: the sender runs each part to its end before the next one, and
 * there is no receiver thread.
 *
 * <p>When the connection fails, every part in the ring ends FAILED (CANCELED when the transport
 * closes) and the next part reconnects. The ring is drained by the receiver as it exits and then by
 * the sender after joining the receiver, so a slot is never completed twice.
 */
final class TcpLane {
    private static final Logger LOG = LoggerFactory.getLogger(TcpLane.class);

    private static final int RING = 1024; // in-flight parts per lane; power of two
    private static final int MASK = RING - 1;
    private static final int MAX_IOV = 128; // buffers per gathering write
    private static final int STAGE_BYTES = 32 << 10; // headers of one gathering write
    private static final long FLUSH_BYTES = 16L << 20; // write at least this often
    private static final int RECV_STAGE_BYTES = 256 << 10;
    private static final int DIRECT_MIN = 64 << 10; // READ payloads from this size go socket->memory
    private static final int MAX_CONNECTS_PER_BATCH = 2;

    static final String REJECTED =
            "the target rejected the address range (not inside one registered host buffer)";
    private static final String CLOSED_REASON = "tcp transport closed";

    private final TcpTransport transport;
    private final TcpPeer peer;
    private final int index;
    private final TcpCounters counters;

    // ---- hand-off queue, guarded by qLock
    private final ReentrantLock qLock = new ReentrantLock();
    private Submission[] qSub = new Submission[16];
    private int[] qStart = new int[16];
    private long[] qSeq = new long[16];
    private int[] qSkip = new int[16]; // parts of this lane's plan already taken (a caller-run's rest)
    private int qHead;
    private int qCount;
    private long seqCounter;
    private long failBefore; // batches queued with a sequence <= this fail at once ...
    private String failReason; // ... with this reason (a connect just failed)
    private volatile Submission current; // the batch the send side works on (written under qLock)
    private volatile Thread currentOwner; // the thread working on current: the sender or a caller
    private boolean stopping;
    private Thread sender;
    private volatile boolean senderParked;
    private volatile boolean abortCurrent;

    // ---- in-flight ring: the sender fills [head, tail) and publishes tail; the receiver consumes head
    private final Submission[] rSub = new Submission[RING];
    private final int[] rReq = new int[RING];
    private final boolean[] rWrite = new boolean[RING];
    private final long[] rAddr = new long[RING];
    private final long[] rLen = new long[RING];
    private volatile long head;
    private volatile long tail;
    private volatile boolean senderWaiting;

    private volatile Conn conn;
    private volatile SocketChannel connecting;
    private final Object connectLock = new Object();

    /**
     * The send side: whoever holds it may use the fields below, append to the ring and write to the
     * connection. The sender holds it while it works (not while it parks); a submitting thread holds
     * it for a caller-run ({@link #tryRunHere}). Retiring a connection happens only under it.
     */
    private final ReentrantLock sendLock = new ReentrantLock();

    // ---- confined to the holder of sendLock
    private final StripePlan plan = new StripePlan();
    private final ByteBuffer stage =
            ByteBuffer.allocateDirect(STAGE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    private final ByteBuffer[] stageCopies = new ByteBuffer[MAX_IOV];
    private final ByteBuffer[] iov = new ByteBuffer[MAX_IOV];
    private final WindowCache sendViews = new WindowCache();
    private int iovCount;
    private int stagePos;
    private int runStart;
    private long pendingBytes;
    private int pendingParts;
    private volatile boolean senderIo;

    // ---- receiver-confined (the sender's in protocol v1, where there is no receiver)
    private final InputStage recvStage = new InputStage(RECV_STAGE_BYTES);
    private final WindowCache recvViews = new WindowCache();

    TcpLane(TcpTransport transport, TcpPeer peer, int index) {
        this.transport = transport;
        this.peer = peer;
        this.index = index;
        this.counters = transport.counters;
        for (int i = 0; i < MAX_IOV; i++) {
            stageCopies[i] = stage.duplicate();
        }
    }

    @Override
    public String toString() {
        return peer.label + " lane " + index;
    }

    Conn connection() {
        return conn;
    }

    // ------------------------------------------------------------------ hand-off

    /** Queues a batch; the sender thread takes it. Never blocks on I/O. */
    void enqueue(Submission s, int start) {
        Thread wake;
        qLock.lock();
        try {
            wake = stopping ? null : enqueueLocked(s, start, 0);
        } finally {
            qLock.unlock();
        }
        if (wake == null) {
            failMine(s, start, 0, TransferStatus.CANCELED, CLOSED_REASON);
        } else if (senderParked) {
            LockSupport.unpark(wake);
        }
    }

    /** Queues (s, start), skipping the first {@code skip} parts; returns the sender. Under qLock. */
    private Thread enqueueLocked(Submission s, int start, int skip) {
        if (qCount == qSub.length) {
            grow();
        }
        int slot = (qHead + qCount) % qSub.length;
        qSub[slot] = s;
        qStart[slot] = start;
        qSeq[slot] = ++seqCounter;
        qSkip[slot] = skip;
        qCount++;
        return senderLocked();
    }

    /** The sender thread, started if there is none yet. Under qLock, not stopping. */
    private Thread senderLocked() {
        if (sender == null) {
            sender = new LaneThread(this::senderLoop, "mc-tcp-send-" + transport.dataPort() + "-" + peer.label + "-" + index);
            sender.setDaemon(true);
            sender.start();
        }
        return sender;
    }

    private void grow() {
        int n = qSub.length;
        Submission[] s = new Submission[n * 2];
        int[] st = new int[n * 2];
        long[] sq = new long[n * 2];
        int[] sk = new int[n * 2];
        for (int i = 0; i < qCount; i++) {
            int from = (qHead + i) % n;
            s[i] = qSub[from];
            st[i] = qStart[from];
            sq[i] = qSeq[from];
            sk[i] = qSkip[from];
        }
        qSub = s;
        qStart = st;
        qSeq = sq;
        qSkip = sk;
        qHead = 0;
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
            senderParked = true;
            boolean empty;
            qLock.lock();
            try {
                empty = qCount == 0 && !stopping;
            } finally {
                qLock.unlock();
            }
            if (empty) {
                LockSupport.park(this);
            }
            senderParked = false;
        }
    }

    /**
     * Under sendLock: runs the next queued batch and everything after it; when the queue is empty,
     * flushes and retires a dead connection. Returns true when the lane is stopping and the sender
     * is done.
     */
    private boolean senderStep() {
        Thread self = Thread.currentThread();
        while (true) {
            Submission s = null;
            int start = 0;
            int skip = 0;
            String fastFail = null;
            boolean exit = false;
            qLock.lock();
            try {
                if (qCount > 0) {
                    s = qSub[qHead];
                    start = qStart[qHead];
                    skip = qSkip[qHead];
                    long seq = qSeq[qHead];
                    qSub[qHead] = null;
                    qHead = (qHead + 1) % qSub.length;
                    qCount--;
                    if (seq <= failBefore) {
                        fastFail = failReason;
                    }
                    abortCurrent = false;
                } else if (stopping) {
                    exit = true;
                }
                current = s;
                currentOwner = s == null ? null : self;
            } finally {
                qLock.unlock();
            }
            if (s != null) {
                try {
                    runBatch(s, start, skip, fastFail);
                } catch (RuntimeException | Error e) {
                    LOG.error("{}: sender failed unexpectedly", this, e);
                    Conn c = conn;
                    if (c != null) {
                        c.kill("sender failed: " + e);
                    }
                    failMine(s, start, skip, TransferStatus.FAILED, "tcp sender failed: " + e);
                }
                continue;
            }
            // idle: push out what is gathered before sleeping
            Conn c = conn;
            if (c != null && iovCount + stagePos > 0) {
                flush(c);
            }
            if (c != null && c.dead) {
                retire(c); // fail parts the receiver's drain may have missed
            }
            if (exit) {
                Conn last = conn;
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
        Conn c = conn;
        if (c == null
                || c.dead
                || head != tail
                || bytes + (long) maxParts * TcpWire.HEADER_BYTES > c.sendBuffer) {
            return false;
        }
        Thread self = Thread.currentThread();
        // left to the sender: a lane's own thread (a completion callback on a receiver must not
        // block in a write that may wait for that receiver), a completion callback of this lane's
        // caller-run submitting again, a pending interrupt (it would close the channel mid-write)
        if (self instanceof LaneThread
                || sendLock.isHeldByCurrentThread()
                || self.isInterrupted()
                || !sendLock.tryLock()) {
            return false;
        }
        try {
            qLock.lock();
            try {
                if (stopping || qCount > 0 || current != null || conn != c || c.dead || head != tail) {
                    return false;
                }
                current = s;
                currentOwner = self;
                abortCurrent = false;
            } finally {
                qLock.unlock();
            }
            counters.callerRuns.increment();
            int rest = -1; // parts already taken when the rest goes to the sender
            try {
                rest = runHere(c, s, start);
            } catch (RuntimeException | Error e) {
                LOG.error("{}: caller-run send failed unexpectedly", this, e);
                c.kill("sender failed: " + e);
                failMine(s, start, 0, TransferStatus.FAILED, "tcp sender failed: " + e);
                rest = -1;
            }
            Thread wake = null;
            boolean cancelRest = false;
            boolean retireHere = false;
            qLock.lock();
            try {
                // hand the rest over before letting go of current: abort must find it queued or current
                if (rest >= 0 && !abortCurrent && !stopping) {
                    wake = enqueueLocked(s, start, rest);
                } else {
                    cancelRest = rest >= 0 && !abortCurrent;
                    if (c.dead) {
                        // parts may have gone into the ring after the receiver's drain: the connection
                        // must be retired, by the sender, or here when closing (close() may have
                        // found no sender)
                        if (stopping) {
                            retireHere = true;
                        } else {
                            wake = senderLocked();
                        }
                    }
                }
                current = null;
                currentOwner = null;
            } finally {
                qLock.unlock();
            }
            if (cancelRest) {
                failMine(s, start, rest, TransferStatus.CANCELED, CLOSED_REASON);
            }
            if (wake != null) {
                LockSupport.unpark(wake);
            }
            if (retireHere) {
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
    private int runHere(Conn c, Submission s, int start) {
        plan.reset(s, start, index, peer.lanes.length, transport.settings.sliceSize);
        int taken = 0;
        try {
            while (plan.next()) {
                int i = plan.request;
                if (abortCurrent) {
                    break; // the engine ended these requests; stop touching their memory
                }
                if (!s.isDone(i)) {
                    if (transport.isClosed()) {
                        fail(s, i, TransferStatus.CANCELED, CLOSED_REASON);
                    } else if (c.dead || !appendV2(c, s, i, plan.offset, plan.length)) {
                        if (iovCount + stagePos > 0) {
                            flush(c); // fails on the dead connection: resets the gather
                        }
                        return taken;
                    }
                }
                taken++;
            }
            if (iovCount + stagePos > 0) {
                flush(c);
            }
            return -1;
        } finally {
            plan.clear();
        }
    }

    /** Sends this lane's parts of one batch. */
    private void runBatch(Submission s, int start, int skip, String fastFail) {
        plan.reset(s, start, index, peer.lanes.length, transport.settings.sliceSize);
        int connects = 0;
        String failure = fastFail;
        try {
            while (plan.next()) {
                if (skip > 0) {
                    skip--; // taken by a caller-run before its connection died
                    continue;
                }
                int i = plan.request;
                if (abortCurrent) {
                    return; // the engine ended these requests; stop touching their memory
                }
                if (s.isDone(i)) {
                    continue;
                }
                if (transport.isClosed()) {
                    fail(s, i, TransferStatus.CANCELED, CLOSED_REASON);
                    continue;
                }
                while (true) {
                    if (abortCurrent) {
                        return;
                    }
                    if (failure != null) {
                        fail(s, i, TransferStatus.FAILED, failure);
                        break;
                    }
                    Conn c = conn;
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
                            rememberConnectFailure(failure);
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

    /** Batches already queued when a connect failed fail at once instead of retrying one by one. */
    private void rememberConnectFailure(String reason) {
        qLock.lock();
        try {
            failBefore = seqCounter;
            failReason = reason;
        } finally {
            qLock.unlock();
        }
    }

    // ------------------------------------------------------------------ protocol v2 sender

    /** Records one part and gathers its bytes; false when the connection died before it was taken. */
    private boolean appendV2(Conn c, Submission s, int i, long off, long len) {
        while (tail - head >= RING) {
            flush(c); // the target must see what it is to answer
            if (c.dead) {
                return false;
            }
            senderWaiting = true;
            while (tail - head >= RING && !c.dead) {
                LockSupport.parkNanos(this, TimeUnit.MILLISECONDS.toNanos(1));
            }
            senderWaiting = false;
            if (c.dead) {
                return false;
            }
        }
        if (stagePos + TcpWire.HEADER_BYTES > STAGE_BYTES
                || iovCount + 3 > MAX_IOV
                || pendingBytes >= FLUSH_BYTES) {
            flush(c);
            if (c.dead) {
                return false;
            }
        }
        boolean write = s.opcode(i) == Opcode.WRITE;
        long local = s.localAddress(i) + off;
        long remote = s.remoteAddress(i) + off;
        if (s.isDone(i)) {
            return true; // ended (cancelled) while being read: its batch may already be reused
        }
        long t = tail;
        int k = (int) t & MASK;
        rSub[k] = s;
        rReq[k] = i;
        rWrite[k] = write;
        rAddr[k] = local;
        rLen[k] = len;
        if (t == head) {
            c.progress(); // the stall clock starts with the first part in flight
        }
        tail = t + 1;
        TcpWire.putHeader(
                stage,
                stagePos,
                len,
                remote,
                write ? TcpWire.OP_WRITE : TcpWire.OP_READ,
                true);
        stagePos += TcpWire.HEADER_BYTES;
        pendingBytes += TcpWire.HEADER_BYTES;
        pendingParts++;
        if (write) {
            closeRun();
            long rem = len;
            while (rem > 0) {
                ByteBuffer v = sendViews.view(local, rem, iovCount);
                int n = v.remaining();
                iov[iovCount++] = v;
                local += n;
                rem -= n;
            }
            pendingBytes += len;
        }
        return true;
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

    /** Writes everything gathered; on failure kills the connection (the ring's parts then fail). */
    private void flush(Conn c) {
        closeRun();
        if (iovCount == 0) {
            resetGather();
            return;
        }
        senderIo = true;
        try {
            writeFully(c, iov, iovCount);
            counters.bytesWritten.add(pendingBytes);
            counters.partsSent.add(pendingParts);
        } catch (IOException e) {
            c.kill(describe(e));
        } finally {
            senderIo = false;
            resetGather();
        }
    }

    private void resetGather() {
        for (int i = 0; i < iovCount; i++) {
            iov[i] = null;
        }
        iovCount = 0;
        stagePos = 0;
        runStart = 0;
        pendingBytes = 0;
        pendingParts = 0;
    }

    private static void writeFully(Conn c, ByteBuffer[] bufs, int count) throws IOException {
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

    // ------------------------------------------------------------------ protocol v1 (sender only)

    /** Runs one part to its end on a v1 connection: no status frames, one request at a time. */
    private boolean runV1(Conn c, Submission s, int i) {
        long off = plan.offset;
        long len = plan.length;
        boolean write = s.opcode(i) == Opcode.WRITE;
        long local = s.localAddress(i) + off;
        long remote = s.remoteAddress(i) + off;
        if (s.isDone(i)) {
            return true; // ended (cancelled) while being read: its batch may already be reused
        }
        senderIo = true;
        c.progress();
        try {
            TcpWire.putHeader(
                    stage,
                    0,
                    len,
                    remote,
                    write ? TcpWire.OP_WRITE : TcpWire.OP_READ,
                    false);
            stagePos = TcpWire.HEADER_BYTES;
            closeRun();
            if (write) {
                long rem = len;
                while (rem > 0) {
                    if (iovCount == MAX_IOV) {
                        writeFully(c, iov, iovCount);
                        resetGather();
                    }
                    ByteBuffer v = sendViews.view(local, rem, iovCount);
                    int n = v.remaining();
                    iov[iovCount++] = v;
                    local += n;
                    rem -= n;
                }
                writeFully(c, iov, iovCount);
                counters.bytesWritten.add(len);
            } else {
                writeFully(c, iov, iovCount);
                receivePayload(c, s, i, local, len);
            }
            counters.partsSent.increment();
            counters.partsCompleted.increment();
            s.partDone(i, TransferStatus.COMPLETED);
        } catch (IOException e) {
            c.kill(describe(e));
            fail(s, i, closedStatus(), c.reason());
        } finally {
            resetGather();
            senderIo = false;
        }
        return true;
    }

    // ------------------------------------------------------------------ receiver (v2)

    private void receiverLoop(Conn c) {
        String reason = null;
        try {
            receive(c);
        } catch (IOException e) {
            reason = describe(e);
        } catch (RuntimeException | Error e) {
            LOG.error("{}: receiver failed unexpectedly", this, e);
            reason = "tcp receiver failed: " + e;
        } finally {
            c.kill(reason == null ? "receiver stopped" : reason);
            drain(c.reason());
        }
    }

    private void receive(Conn c) throws IOException {
        final InputStage in = recvStage;
        while (true) {
            // the oldest part in flight, when known, says what follows its status frame: before a
            // large READ payload read only the frame, so the payload goes straight to memory
            long h0 = head;
            boolean exact = h0 != tail && directPayload((int) h0 & MASK);
            in.fill(c.ch, TcpWire.STATUS_BYTES, exact ? TcpWire.STATUS_BYTES : in.capacity, c);
            long h = head;
            if (h == tail) {
                throw new IOException("protocol error: the peer sent data with nothing in flight");
            }
            long frame = TcpWire.getLongLE(in.buf, in.rpos);
            in.rpos += TcpWire.STATUS_BYTES;
            if (!TcpWire.isStatusFrame(frame)) {
                throw new IOException(
                        "protocol error: expected a status frame, got 0x" + Long.toHexString(frame));
            }
            int k = (int) h & MASK;
            Submission s = rSub[k];
            int i = rReq[k];
            if (TcpWire.statusCode(frame) == TcpWire.STATUS_OK) {
                if (!rWrite[k]) {
                    receivePayload(c, s, i, rAddr[k], rLen[k]);
                }
                counters.partsCompleted.increment();
                s.partDone(i, TransferStatus.COMPLETED);
            } else {
                counters.partsFailed.increment();
                s.partFailed(i, TransferStatus.FAILED, REJECTED);
            }
            rSub[k] = null;
            head = h + 1;
            if (senderWaiting) {
                Thread t = sender;
                if (t != null) {
                    LockSupport.unpark(t);
                }
            }
            if (in.available() == 0) {
                in.rpos = 0;
                in.wpos = 0;
            }
        }
    }

    /**
     * Reads the READ payload of request {@code i} into local memory at {@code addr}. Once the request
     * has ended (a sibling part failed, the deadline passed) the rest of the payload is read and
     * dropped: its memory may already be the caller's again.
     */
    private void receivePayload(Conn c, Submission s, int i, long addr, long len)
            throws IOException {
        final InputStage in = recvStage;
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
                n = in.scatterRead(c.ch, recvViews.view(addr, len, 0), TcpWire.STATUS_BYTES, c);
            }
            addr += n;
            len -= n;
            if (!drop && len > 0 && s.isDone(i)) {
                drop = true;
            }
        }
    }

    /** Whether ring slot {@code k} is a READ whose payload is received straight into memory. */
    private boolean directPayload(int k) {
        return !rWrite[k] && rLen[k] >= DIRECT_MIN;
    }

    /** Fails every part in the ring. Caller: the receiver as it exits, or the sender after joining it. */
    private void drain(String reason) {
        long h = head;
        long t = tail;
        TransferStatus status = closedStatus();
        for (; h < t; h++) {
            int k = (int) h & MASK;
            Submission s = rSub[k];
            rSub[k] = null;
            if (s != null) {
                fail(s, rReq[k], status, reason);
            }
        }
        head = h;
        if (senderWaiting) {
            Thread snd = sender;
            if (snd != null) {
                LockSupport.unpark(snd);
            }
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
                Conn c = new Conn(ch);
                recvStage.rpos = 0;
                recvStage.wpos = 0;
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
    private void retire(Conn c) {
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
        drain(c.reason());
        resetGather();
        if (conn == c) {
            conn = null;
        }
    }

    // ------------------------------------------------------------------ abort and close

    /**
     * Stops touching {@code work}'s memory: drops its queued batch; if any of its parts is in flight or
     * being sent here, closes the connection (other parts in flight on it fail too) and waits until
     * this lane's threads have let go of it.
     */
    void abort(Submission work) {
        boolean touching = false;
        boolean sending = false;
        boolean self = false;
        qLock.lock();
        try {
            for (int n = 0, len = qSub.length; n < qCount; n++) {
                int slot = (qHead + n) % len;
                if (qSub[slot] == work) {
                    removeQueued(n);
                    n--;
                }
            }
            if (current == work) {
                abortCurrent = true;
                touching = true;
                sending = true;
                self = currentOwner == Thread.currentThread();
            }
        } finally {
            qLock.unlock();
        }
        if (!touching) {
            for (long h = head, t = tail; h < t; h++) {
                if (rSub[(int) h & MASK] == work) {
                    touching = true;
                    break;
                }
            }
        }
        if (!touching) {
            return;
        }
        SocketChannel cc = connecting;
        if (sending && cc != null) {
            TcpServer.closeQuietly(cc); // the sender is connecting for this very batch
        }
        Conn c = conn;
        if (c != null) {
            c.kill("connection closed to stop an aborted transfer");
            TcpServer.join(c.receiver);
        }
        Thread snd = sender;
        if (snd != null && snd != Thread.currentThread()) {
            LockSupport.unpark(snd);
        }
        // wait for the thread sending it, the sender or a submitting thread in a caller-run (never
        // for this thread itself: a completion callback of the batch being sent here)
        if (!self) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
            while (current == work && System.nanoTime() - deadline < 0) {
                LockSupport.parkNanos(this, 50_000);
            }
        }
    }

    private void removeQueued(int n) {
        int len = qSub.length;
        for (int j = n; j < qCount - 1; j++) {
            int to = (qHead + j) % len;
            int from = (qHead + j + 1) % len;
            qSub[to] = qSub[from];
            qStart[to] = qStart[from];
            qSeq[to] = qSeq[from];
            qSkip[to] = qSkip[from];
        }
        qSub[(qHead + qCount - 1) % len] = null;
        qCount--;
    }

    /** Stops the lane: queued batches end CANCELED, in-flight parts end CANCELED, threads stop. */
    void close() {
        Submission[] dropped;
        int[] starts;
        int[] skips;
        Thread snd;
        qLock.lock();
        try {
            stopping = true;
            dropped = new Submission[qCount];
            starts = new int[qCount];
            skips = new int[qCount];
            for (int n = 0; n < qCount; n++) {
                int slot = (qHead + n) % qSub.length;
                dropped[n] = qSub[slot];
                starts[n] = qStart[slot];
                skips[n] = qSkip[slot];
                qSub[slot] = null;
            }
            qCount = 0;
            snd = sender;
        } finally {
            qLock.unlock();
        }
        for (int n = 0; n < dropped.length; n++) {
            failMine(dropped[n], starts[n], skips[n], TransferStatus.CANCELED, CLOSED_REASON);
        }
        TcpServer.closeQuietly(connecting);
        Conn c = conn;
        if (c != null) {
            c.kill(CLOSED_REASON);
        }
        if (snd != null) {
            LockSupport.unpark(snd);
            TcpServer.join(snd);
        }
        if (!sendLock.isHeldByCurrentThread()) {
            sendLock.lock(); // a caller-run in progress ends (its connection is dead) before close returns
            sendLock.unlock();
        }
        if (c != null) {
            TcpServer.join(c.receiver);
        }
    }

    // ------------------------------------------------------------------ helpers

    /** Fails this lane's parts of a batch that will not be sent. */
    private void failMine(Submission s, int start, int skip, TransferStatus status, String reason) {
        StripePlan p = new StripePlan(); // rare path (closing, sender crash): allocation is fine
        p.reset(s, start, index, peer.lanes.length, transport.settings.sliceSize);
        while (p.next()) {
            if (skip > 0) {
                skip--;
                continue;
            }
            if (!s.isDone(p.request)) {
                fail(s, p.request, status, reason);
            }
        }
    }

    private void fail(Submission s, int i, TransferStatus status, String reason) {
        counters.partsFailed.increment();
        s.partFailed(i, status, reason);
    }

    private TransferStatus closedStatus() {
        return transport.isClosed() ? TransferStatus.CANCELED : TransferStatus.FAILED;
    }

    private static String describe(IOException e) {
        if (e instanceof AsynchronousCloseException || e instanceof ClosedChannelException) {
            return "connection closed";
        }
        if (e instanceof EOFException) {
            return e.getMessage();
        }
        return "connection failed: " + e;
    }

    /** A lane's sender or receiver: never sends a caller-run. */
    private static final class LaneThread extends Thread {
        LaneThread(Runnable task, String name) {
            super(task, name);
        }
    }

    /** One TCP connection of the lane. */
    final class Conn extends Watched {
        final SocketChannel ch;
        volatile boolean dead;
        private String reason;
        volatile Thread receiver;

        /** SO_SNDBUF as the kernel set it (0 when unknown): how much a caller-run may write. */
        final int sendBuffer;

        Conn(SocketChannel ch) {
            this.ch = ch;
            int sb;
            try {
                sb = ch.getOption(StandardSocketOptions.SO_SNDBUF);
            } catch (IOException | RuntimeException e) {
                sb = 0;
            }
            this.sendBuffer = sb;
        }

        @Override
        boolean busy() {
            return head != tail || senderIo;
        }

        /** Closes the connection once; the first reason wins. */
        @Override
        synchronized void kill(String why) {
            if (!dead) {
                reason = "tcp " + TcpLane.this + ": " + why;
                dead = true;
                counters.lanesKilled.increment();
                TcpServer.closeQuietly(ch);
            }
        }

        /** Why the connection died; call after {@link #kill}. */
        synchronized String reason() {
            return reason;
        }
    }
}
