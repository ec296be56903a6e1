package io.mooncake4j;

import io.mooncake4j.internal.RegisteredRegion;
import io.mooncake4j.internal.ReleaseLedger;
import io.mooncake4j.metadata.BufferDescriptor;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * A batch of one-sided transfers (Mooncake's batch id, as a safe object). Add requests, {@link
 * #submit()} once, then poll {@link #status(int)}, block in {@link #await(Duration)} or compose
 * {@link #completion()}. A batch holds no native resource: one that is dropped, even in flight,
 * leaks nothing. Adding, submitting and {@link #reset()} are for one thread at a time; status and
 * waiting are thread safe.
 *
 * <p>A batch can be reused, as Mooncake reuses a batch id: once every request has ended, {@link
 * #reset()} empties it for the next round of up to {@link #capacity()} requests. A loop that resets
 * one batch allocates nothing per request on the Java heap in steady state; a loop that creates a
 * batch per round allocates the batch (about 50 bytes per request of capacity, plus 200 bytes).
 *
 * <p>Each round has a number (its epoch), kept in every per-request state word: a transport that
 * reports on a request of an earlier round, after it was cancelled or timed out and the batch was
 * reset, changes nothing.
 *
 * <p>A request that times out or is cancelled ends at once (TIMEOUT or CANCELED), but a transport
 * may not be able to stop a part it already issued (an RDMA read cannot be recalled): until the
 * transport reports that part, the local memory may still be read or written, and the engine keeps
 * its region pinned ({@link TransferEngine#unregisterMemory} waits for it). Reusing the batch does
 * not wait for that.
 *
 * <p>{@link #completion()} futures are completed on the engine's completion threads, never on a
 * transport's I/O or completion-queue thread, so dependent stages may block or submit more work.
 */
public final class TransferBatch implements AutoCloseable {
    /** How long a waiter on a small batch, or on a round of same-process device copies, spins before parking. */
    private static final long SPIN_NANOS = Long.getLong("mooncake4j.await.spin.nanos", 50_000L);
    /** A batch is small enough to spin for when it has at most this many requests... */
    private static final int SPIN_MAX_REQUESTS = 16;
    /** ...and bytes. */
    private static final long SPIN_MAX_BYTES = 64 << 10;
    private static final VarHandle INTS = MethodHandles.arrayElementVarHandle(int[].class);
    private static final VarHandle REMAINING;
    private static final VarHandle INFLIGHT;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            REMAINING = l.findVarHandle(TransferBatch.class, "remaining", int.class);
            INFLIGHT = l.findVarHandle(TransferBatch.class, "inflight", Object.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private static final int WAITING = TransferStatus.WAITING.code();
    private static final int PENDING = TransferStatus.PENDING.code();
    private static final int COMPLETED = TransferStatus.COMPLETED.code();
    // a state word is (epoch << CODE_BITS) | status code; status codes are 0..6
    private static final int CODE_BITS = 3;
    private static final int CODE_MASK = (1 << CODE_BITS) - 1;
    private static final Duration FOREVER = Duration.ofDays(1);
    /** {@link #inflight} between markSubmitted and the engine publishing what it handed to transports. */
    static final Object SUBMITTING = new Object();

    private final TransferEngine engine;
    private final byte[] opcodes;
    private final long[] words; // 3 per request: local address, remote address, length
    private final Segment[] segments;
    private final BufferDescriptor[] remoteBuffers; // per request: the peer buffer it was validated against
    private final int[] state; // 2 per request: status word, first failure word (code 0 = none)
    private ReleaseLedger ledger; // parts to report and pins; replaced on reset while pins are held
    private volatile String[] reasons;
    private volatile int epoch;
    @SuppressWarnings("unused") // through REMAINING
    private volatile int remaining;
    @SuppressWarnings("unused") // through INFLIGHT
    private volatile Object inflight; // the engine's: null, SUBMITTING, a SegmentSubmission or an array of them
    private int size;
    private volatile boolean submitted;
    private volatile boolean done;
    private volatile CompletableFuture<TransferBatch> future;
    private volatile long deadlineNanos;
    private volatile boolean deviceCopiesOnly; // the engine's: this round is same-process device copies only
    int watchdogSlot = -1; // the engine's, while the round is tracked

    TransferBatch(TransferEngine engine, int capacity) {
        if (capacity <= 0) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "batch capacity must be positive: " + capacity);
        }
        this.engine = engine;
        this.opcodes = new byte[capacity];
        this.words = new long[3 * capacity];
        this.segments = new Segment[capacity];
        this.remoteBuffers = new BufferDescriptor[capacity];
        this.state = new int[2 * capacity];
        this.ledger = new ReleaseLedger(capacity);
    }

    /** Adds a READ of {@code length} bytes at {@code remoteAddress} in the segment into {@code localAddress}. */
    public TransferBatch read(Segment segment, long localAddress, long remoteAddress, long length) {
        return add(Opcode.READ, segment, localAddress, remoteAddress, length);
    }

    /** Adds a WRITE of {@code length} bytes from {@code localAddress} to {@code remoteAddress} in the segment. */
    public TransferBatch write(Segment segment, long localAddress, long remoteAddress, long length) {
        return add(Opcode.WRITE, segment, localAddress, remoteAddress, length);
    }

    /** Adds a request. */
    public TransferBatch add(TransferRequest r) {
        return add(r.opcode(), r.segment(), r.localAddress(), r.remoteAddress(), r.length());
    }

    /** Adds a request; the index it gets is the number of requests added before it. */
    public TransferBatch add(Opcode op, Segment segment, long localAddress, long remoteAddress, long len) {
        if (submitted) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT, "batch already submitted: reset() it once it is done, or create a new one");
        }
        if (size == opcodes.length) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "batch is full (" + opcodes.length + " requests): allocate a larger one with newBatch");
        }
        if (segment == null) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "segment is null: use openSegment");
        }
        int i = size;
        opcodes[i] = (byte) op.code();
        segments[i] = segment;
        words[3 * i] = localAddress;
        words[3 * i + 1] = remoteAddress;
        words[3 * i + 2] = len;
        INTS.setRelease(state, 2 * i, word(epoch, WAITING));
        size = i + 1;
        return this;
    }

    /** Number of requests added. */
    public int size() {
        return size;
    }

    /** Maximum number of requests. */
    public int capacity() {
        return opcodes.length;
    }

    /**
     * Submits every request; returns at once. Same-process copies of host memory are done before it
     * returns; those with GPU memory on either side end when the device's copier has done them.
     */
    public TransferBatch submit() {
        engine.submit(this);
        return this;
    }

    /**
     * Empties the batch for a new round of requests, keeping its capacity: Mooncake's reuse of a batch
     * id, without allocating. Allowed before submitting and once every request has ended ({@link
     * #isDone()}); the statuses, reasons and {@link #completion()} future of the last round are
     * forgotten.
     *
     * @throws MooncakeException INVALID_ARGUMENT while requests of the batch are still in flight
     */
    public TransferBatch reset() {
        if (submitted && !done) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "batch still in flight: wait for it (await, join, completion) or close() it before reset()");
        }
        // A new epoch first, so that a late report from a transport about the last round, or a read of
        // its requests, can tell that they are gone; then the requests may change.
        epoch = (epoch + 1) & (Integer.MAX_VALUE >>> CODE_BITS);
        VarHandle.storeStoreFence();
        Arrays.fill(segments, 0, size, null);
        Arrays.fill(remoteBuffers, 0, size, null);
        if (ledger.holdsPins(size)) {
            // a timed-out or cancelled round's parts are still out: they keep the old ledger
            ledger = new ReleaseLedger(opcodes.length);
        }
        String[] r = reasons;
        if (r != null) {
            Arrays.fill(r, 0, size, null);
        }
        size = 0;
        future = null;
        done = false;
        submitted = false;
        return this;
    }

    /** The status of request {@code index}. */
    public TransferStatus status(int index) {
        checkIndex(index);
        return TransferStatus.ofCode((int) INTS.getVolatile(state, 2 * index) & CODE_MASK);
    }

    /** Why request {@code index} did not complete, or null. */
    public String failureReason(int index) {
        checkIndex(index);
        String[] r = reasons;
        return r == null ? null : r[index];
    }

    /** Whether every request has ended. */
    public boolean isDone() {
        return done;
    }

    /** Whether every request ended COMPLETED. */
    public boolean isAllCompleted() {
        if (!done) {
            return false;
        }
        for (int i = 0; i < size; i++) {
            if (((int) INTS.getVolatile(state, 2 * i) & CODE_MASK) != COMPLETED) {
                return false;
            }
        }
        return true;
    }

    /**
     * Waits until every request has ended or {@code timeout} passes. Requests always end by their
     * deadline ({@code MC_TRANSFER_TIMEOUT}), so a timeout a little beyond it never returns false.
     *
     * @return whether every request has ended
     */
    public boolean await(Duration timeout) throws InterruptedException {
        if (done) {
            return true;
        }
        long start = System.nanoTime();
        long end = start + timeout.toNanos();
        // A small batch completes in tens of microseconds: a short spin catches that without the
        // cost of parking and being woken (a third of its latency). So does a round of same-process
        // device copies, whatever its size (no I/O thread needs the core; the copier's thread is
        // spared a wake-up per batch). Other batches park at once and leave the cores to the I/O threads.
        if (deviceCopiesOnly || isSmall()) {
            long spinEnd = start + Math.min(SPIN_NANOS, timeout.toNanos());
            while (!done && System.nanoTime() - spinEnd < 0) {
                Thread.onSpinWait();
            }
        }
        if (done) {
            return true;
        }
        synchronized (state) {
            while (!done) {
                long left = end - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                TimeUnit.NANOSECONDS.timedWait(state, left);
            }
        }
        return true;
    }

    private boolean isSmall() {
        if (size > SPIN_MAX_REQUESTS) {
            return false;
        }
        long bytes = 0;
        for (int i = 0; i < size; i++) {
            bytes += words[3 * i + 2];
        }
        return bytes <= SPIN_MAX_BYTES;
    }

    /** Waits until every request has ended (at most the deadline plus a little). */
    public TransferBatch join() {
        if (done) {
            return this;
        }
        boolean interrupted = false;
        try {
            while (true) {
                try {
                    if (await(FOREVER)) {
                        return this;
                    }
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * A future completed with this batch when every request has ended (whatever the statuses). It is
     * completed on the engine's completion threads (or on the calling thread when the batch has
     * already ended), never on a transport thread.
     */
    public CompletableFuture<TransferBatch> completion() {
        CompletableFuture<TransferBatch> f = future;
        if (f == null) {
            synchronized (state) {
                f = future;
                if (f == null) {
                    f = new CompletableFuture<>();
                    future = f;
                    if (done) {
                        f.complete(this);
                    }
                }
            }
        }
        return f;
    }

    /**
     * Cancels requests still in flight: they end CANCELED at once and the transport drops their parts
     * not yet sent; other batches, also to the same peer, are not disturbed. Does nothing when the
     * batch was never submitted or has ended.
     */
    @Override
    public void close() {
        if (submitted && !done) {
            engine.cancel(this, TransferStatus.CANCELED, "batch closed before it completed");
        }
    }

    private void checkIndex(int index) {
        if (index < 0 || index >= size) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT, "request index " + index + " outside batch of " + size);
        }
    }

    private static int word(int epoch, int code) {
        return (epoch << CODE_BITS) | code;
    }

    // ---- engine side ----

    /**
     * Starts a round: every request PENDING in one part. The batch cannot complete until {@link
     * #releaseHold} (the engine holds it while it hands requests out). Returns the round's epoch, or
     * -1 when the batch was already submitted.
     */
    int markSubmitted(long deadline) {
        if (submitted) {
            return -1;
        }
        int e = epoch;
        deadlineNanos = deadline;
        // plain stores: other threads see the round only through the volatile writes below or the
        // hand-off to a transport; a report about an earlier round fails its epoch check either way
        int pending = word(e, PENDING);
        int noFailure = word(e, 0);
        int[] s = state;
        for (int i = 0; i < size; i++) {
            s[2 * i] = pending;
            s[2 * i + 1] = noFailure;
        }
        ledger.start(size, e);
        INFLIGHT.setVolatile(this, SUBMITTING);
        REMAINING.setVolatile(this, size + 1);
        submitted = true;
        return e;
    }

    /** The engine has handed every request out: the batch may complete. */
    void releaseHold(int e) {
        if ((int) REMAINING.getAndAdd(this, -1) == 1) {
            complete(e);
        }
    }

    int epoch() {
        return epoch;
    }

    long deadlineNanos() {
        return deadlineNanos;
    }

    Object inflight() {
        return inflight;
    }

    /** Whether the round being submitted has only same-process device copies (then its waiters spin first). */
    void deviceCopiesOnly(boolean only) {
        deviceCopiesOnly = only;
    }

    /** The current round's ledger (parts and pins), for the round's submissions. */
    ReleaseLedger ledger() {
        return ledger;
    }

    /** Publishes what the round handed to transports, unless the round was cancelled meanwhile. */
    boolean publishInflight(Object work) {
        return INFLIGHT.compareAndSet(this, SUBMITTING, work);
    }

    /** Takes the round's in-flight work for the caller (completion or cancellation): one of them wins. */
    boolean claimInflight(Object work) {
        return work != null && INFLIGHT.compareAndSet(this, work, null);
    }

    Opcode opcode(int i) {
        return opcodes[i] == 0 ? Opcode.READ : Opcode.WRITE;
    }

    long local(int i) {
        return words[3 * i];
    }

    long remote(int i) {
        return words[3 * i + 1];
    }

    long length(int i) {
        return words[3 * i + 2];
    }

    Segment segment(int i) {
        return segments[i];
    }

    BufferDescriptor remoteBuffer(int i) {
        return remoteBuffers[i];
    }

    void remoteBuffer(int i, BufferDescriptor b) {
        remoteBuffers[i] = b;
    }

    /** Request i's local memory is pinned by {@code p} until its last part is reported. */
    void pin(int i, RegisteredRegion p) {
        ledger.pinned(i, p);
    }

    /** One part of request i of round e ended; the request ends with its last part, the first failure deciding. */
    void partEnded(ReleaseLedger l, int i, TransferStatus st, String reason, int e) {
        if (st != TransferStatus.COMPLETED
                && (int) INTS.getVolatile(state, 2 * i) == word(e, PENDING)
                && INTS.compareAndSet(state, 2 * i + 1, word(e, 0), word(e, st.code()))) {
            setReason(i, reason != null ? reason : "the transport reported " + st);
        }
        if (l.reportPart(i, e)) { // the last part: the pin is released, now the status
            int f = (int) INTS.getVolatile(state, 2 * i + 1);
            int code = f >>> CODE_BITS == e ? f & CODE_MASK : 0;
            end(i, code == 0 ? TransferStatus.COMPLETED : TransferStatus.ofCode(code), null, e);
        }
    }

    /**
     * Requests {@code index[from]} to {@code index[from + n - 1]} ({@code from} to {@code from + n - 1}
     * when {@code index} is null) of round e, each one same-process
     * device copy in one part and holding no pin of its own (their regions are the round's), end
     * with {@code st}: one report each, one update of the count of requests left. Those ended
     * meanwhile (deadline, cancellation) keep their status.
     */
    void endCopies(ReleaseLedger l, int[] index, int from, int n, TransferStatus st, String reason, int e) {
        int pending = word(e, PENDING);
        int ended = word(e, st.code());
        int count = 0;
        for (int k = from; k < from + n; k++) {
            int i = index == null ? k : index[k];
            if (l.reportCopy(i, e) && INTS.compareAndSet(state, 2 * i, pending, ended)) {
                if (reason != null) {
                    setReason(i, reason);
                }
                count++;
            }
        }
        if (count > 0 && (int) REMAINING.getAndAdd(this, -count) == count) {
            complete(e);
        }
    }

    /**
     * Request i of round e, never handed to a transport and not ended yet, ends with {@code st}; its
     * pin is released.
     */
    void endLocally(int i, TransferStatus st, String reason, int e) {
        ledger.endLocally(i, e);
        end(i, st, reason, e);
    }

    /** Request i of round e ends with {@code st}; all its parts count as reported (none was issued). */
    void fail(ReleaseLedger l, int i, TransferStatus st, String reason, int e) {
        l.reportAll(i, e);
        end(i, st, reason, e);
    }

    /**
     * Ends every request of round e that has not ended with {@code st}, leaving its parts (and pins)
     * to whoever issued them: the transports, or the device copier for same-process GPU copies.
     */
    void endPending(TransferStatus st, String reason, int e) {
        for (int i = 0; i < size; i++) {
            end(i, st, reason, e);
        }
    }

    /** Whether request i of round e has ended (true for a request of an earlier round). */
    boolean isDone(int i, int e) {
        int s = (int) INTS.getVolatile(state, 2 * i);
        int code = s & CODE_MASK;
        return s >>> CODE_BITS != e || (code != PENDING && code != WAITING);
    }

    /**
     * Ends request i of round e with {@code st} unless it has already ended; returns whether it did.
     * Its pin is not touched: that is released when the transport reports its last part.
     */
    boolean end(int i, TransferStatus st, String reason, int e) {
        if (!INTS.compareAndSet(state, 2 * i, word(e, PENDING), word(e, st.code()))) {
            return false;
        }
        if (reason != null) {
            setReason(i, reason);
        }
        if ((int) REMAINING.getAndAdd(this, -1) == 1) {
            complete(e);
        }
        return true;
    }

    private void setReason(int i, String reason) {
        String[] r = reasons;
        if (r == null) {
            synchronized (state) {
                r = reasons;
                if (r == null) {
                    r = new String[opcodes.length];
                    reasons = r;
                }
            }
        }
        if (r[i] == null) {
            r[i] = reason;
        }
    }

    /** Every request of round e ended: unless a cancellation took the round (it signals itself), signal. */
    private void complete(int e) {
        Object work = inflight;
        if (!claimInflight(work)) {
            return;
        }
        if (work != SUBMITTING) {
            engine.untrack(this);
        }
        signalDone(e);
    }

    /** Wakes waiters of round e; no-op when the batch has since been reset or was signalled already. */
    void signalDone(int e) {
        CompletableFuture<TransferBatch> f;
        synchronized (state) {
            if (epoch != e || done) {
                return;
            }
            done = true;
            state.notifyAll();
            f = future;
        }
        if (f != null) {
            engine.completeLater(f, this);
        }
    }
}
