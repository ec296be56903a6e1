package io.mooncake4j;

import io.mooncake4j.spi.PinnedRegion;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A batch of one-sided transfers (Mooncake's batch id, as a safe object). Add requests, {@link
 * #submit()} once, then poll {@link #status(int)}, block in {@link #await(Duration)} or compose
 * {@link #completion()}. A batch holds no native resource: one that is dropped, even in flight,
 * leaks nothing. Adding is not thread safe; status and waiting are.
 */
public final class TransferBatch implements AutoCloseable {
    private static final VarHandle INTS = MethodHandles.arrayElementVarHandle(int[].class);
    private static final int WAITING = TransferStatus.WAITING.code();
    private static final int PENDING = TransferStatus.PENDING.code();
    private static final int COMPLETED = TransferStatus.COMPLETED.code();

    private final TransferEngine engine;
    private final byte[] opcodes;
    private final long[] local;
    private final long[] remote;
    private final long[] length;
    private final Segment[] segments;
    private final int[] status;
    private final int[] parts;
    private final int[] failure;
    private final PinnedRegion[] pins;
    private volatile String[] reasons;
    private final AtomicInteger remaining = new AtomicInteger();
    private final Object doneLock = new Object();
    private int size;
    private volatile boolean submitted;
    private volatile boolean done;
    private volatile CompletableFuture<TransferBatch> future;
    private long deadlineNanos;

    TransferBatch(TransferEngine engine, int capacity) {
        if (capacity <= 0) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "batch capacity must be positive: " + capacity);
        }
        this.engine = engine;
        this.opcodes = new byte[capacity];
        this.local = new long[capacity];
        this.remote = new long[capacity];
        this.length = new long[capacity];
        this.segments = new Segment[capacity];
        this.status = new int[capacity];
        this.parts = new int[capacity];
        this.failure = new int[capacity];
        this.pins = new PinnedRegion[capacity];
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
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "batch already submitted: create a new one");
        }
        if (size == opcodes.length) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "batch is full (" + opcodes.length + " requests): allocate a larger one with newBatch");
        }
        if (segment == null) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "segment is null: use openSegment");
        }
        opcodes[size] = (byte) op.code();
        segments[size] = segment;
        local[size] = localAddress;
        remote[size] = remoteAddress;
        length[size] = len;
        size++;
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

    /** Submits every request; returns at once (same-process copies are done before it returns). */
    public TransferBatch submit() {
        engine.submit(this);
        return this;
    }

    /** The status of request {@code index}. */
    public TransferStatus status(int index) {
        checkIndex(index);
        return TransferStatus.ofCode((int) INTS.getVolatile(status, index));
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
            if ((int) INTS.getVolatile(status, i) != COMPLETED) {
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
        long end = System.nanoTime() + timeout.toNanos();
        synchronized (doneLock) {
            while (!done) {
                long left = end - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                TimeUnit.NANOSECONDS.timedWait(doneLock, left);
            }
        }
        return true;
    }

    /** Waits until every request has ended (at most the deadline plus a little). */
    public TransferBatch join() {
        boolean interrupted = false;
        try {
            while (true) {
                try {
                    if (await(Duration.ofDays(1))) {
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

    /** A future completed with this batch when every request has ended (whatever the statuses). */
    public CompletableFuture<TransferBatch> completion() {
        CompletableFuture<TransferBatch> f = future;
        if (f == null) {
            synchronized (doneLock) {
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
     * Cancels requests still in flight (they end CANCELED) and stops the transport touching their
     * memory. Does nothing when the batch was never submitted or has ended.
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

    // ---- engine side ----

    boolean markSubmitted(long deadline) {
        if (submitted) {
            return false;
        }
        submitted = true;
        deadlineNanos = deadline;
        remaining.set(size);
        for (int i = 0; i < size; i++) {
            INTS.setVolatile(status, i, PENDING);
            parts[i] = 1;
        }
        if (size == 0) {
            signalDone();
        }
        return true;
    }

    long deadlineNanos() {
        return deadlineNanos;
    }

    Opcode opcode(int i) {
        return opcodes[i] == 0 ? Opcode.READ : Opcode.WRITE;
    }

    long local(int i) {
        return local[i];
    }

    long remote(int i) {
        return remote[i];
    }

    long length(int i) {
        return length[i];
    }

    Segment segment(int i) {
        return segments[i];
    }

    void pin(int i, PinnedRegion p) {
        pins[i] = p;
    }

    PinnedRegion pinOf(int i) {
        return pins[i];
    }

    void expectParts(int i, int n) {
        if (n <= 0) {
            throw new IllegalArgumentException("parts must be positive: " + n);
        }
        INTS.setVolatile(parts, i, n);
    }

    /** One part of request i ended; the request ends with its last part, the first failure deciding. */
    void partEnded(int i, TransferStatus st, String reason) {
        if ((int) INTS.getVolatile(status, i) != PENDING) {
            return;
        }
        if (st != TransferStatus.COMPLETED
                && INTS.compareAndSet(failure, i, 0, st.code())) {
            setReason(i, reason != null ? reason : "the transport reported " + st);
        }
        if ((int) INTS.getAndAdd(parts, i, -1) == 1) {
            int f = (int) INTS.getVolatile(failure, i);
            finish(i, f == 0 ? TransferStatus.COMPLETED : TransferStatus.ofCode(f), null);
        }
    }

    boolean isDone(int i) {
        int s = (int) INTS.getVolatile(status, i);
        return s != PENDING && s != WAITING;
    }

    /** Ends request i with {@code st} unless it has already ended; returns whether it did. */
    boolean finish(int i, TransferStatus st, String reason) {
        if (!INTS.compareAndSet(status, i, PENDING, st.code())) {
            return false;
        }
        if (reason != null) {
            setReason(i, reason);
        }
        PinnedRegion p = pins[i];
        if (p != null) {
            pins[i] = null;
            p.unpin();
        }
        if (remaining.decrementAndGet() == 0) {
            signalDone();
        }
        return true;
    }

    private void setReason(int i, String reason) {
        String[] r = reasons;
        if (r == null) {
            synchronized (doneLock) {
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

    private void signalDone() {
        CompletableFuture<TransferBatch> f;
        synchronized (doneLock) {
            done = true;
            doneLock.notifyAll();
            f = future;
        }
        engine.batchDone(this);
        if (f != null) {
            f.complete(this);
        }
    }
}
