package io.mooncake4j.transport.tcp;

import io.mooncake4j.spi.Submission;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * What submitting threads, the lane's sender and abort share, under one lock: the queue of batches
 * handed to the lane as (submission, start lane, parts already taken), the batch the send side works
 * on now ({@link #current()}, with whether it was aborted), whether the lane is stopping, and the
 * sender thread itself (started on the first hand-off). The queue is a growable ring of parallel
 * arrays: no object per batch.
 */
final class LaneHandoff {
    /** What a caller does with queued batches it took out (abort, close): report their parts. */
    interface Dropped {
        void drop(Submission s, int start, int skip);
    }

    private final ReentrantLock lock = new ReentrantLock();
    private final Runnable senderTask;
    private final String senderName;
    private Submission[] sub = new Submission[16];
    private int[] start = new int[16];
    private long[] seq = new long[16];
    private int[] skip = new int[16]; // parts of this lane's plan already taken (a caller-run's rest)
    private int head;
    private int count;
    private long seqCounter;
    private long failBefore; // batches queued with a sequence <= this fail at once ...
    private String failReason; // ... with this reason (a connect just failed)
    private boolean stopping;
    private Thread sender;
    private volatile boolean senderParked;
    private volatile Submission current; // the batch the send side works on (the sender or a caller-run)
    private volatile boolean currentAborted;

    // what take() took: the send side reads them right after take(), on the same thread
    Submission takenSub;
    int takenStart;
    int takenSkip;
    String takenFastFail;

    LaneHandoff(Runnable senderTask, String senderName) {
        this.senderTask = senderTask;
        this.senderName = senderName;
    }

    /** Queues a batch and wakes the sender; false when the lane is stopping (nothing queued). */
    boolean offer(Submission s, int st, int sk) {
        Thread wake;
        lock.lock();
        try {
            if (stopping) {
                return false;
            }
            wake = offerLocked(s, st, sk);
        } finally {
            lock.unlock();
        }
        if (senderParked) {
            LockSupport.unpark(wake);
        }
        return true;
    }

    private Thread offerLocked(Submission s, int st, int sk) {
        if (count == sub.length) {
            grow();
        }
        int slot = (head + count) % sub.length;
        sub[slot] = s;
        start[slot] = st;
        seq[slot] = ++seqCounter;
        skip[slot] = sk;
        count++;
        return senderLocked();
    }

    /** The sender thread, started if there is none yet. Under the lock, not stopping. */
    private Thread senderLocked() {
        if (sender == null) {
            sender = new TcpLane.LaneThread(senderTask, senderName);
            sender.setDaemon(true);
            sender.start();
        }
        return sender;
    }

    private void grow() {
        int n = sub.length;
        Submission[] s = new Submission[n * 2];
        int[] st = new int[n * 2];
        long[] sq = new long[n * 2];
        int[] sk = new int[n * 2];
        for (int i = 0; i < count; i++) {
            int from = (head + i) % n;
            s[i] = sub[from];
            st[i] = start[from];
            sq[i] = seq[from];
            sk[i] = skip[from];
        }
        sub = s;
        start = st;
        seq = sq;
        skip = sk;
        head = 0;
    }

    /**
     * The send side takes the next batch into {@code taken*} and makes it current (null when the queue
     * is empty). Returns false when the queue is empty and the lane is stopping: the sender is done.
     */
    boolean take() {
        lock.lock();
        try {
            Submission s = null;
            if (count > 0) {
                s = sub[head];
                takenStart = start[head];
                takenSkip = skip[head];
                takenFastFail = seq[head] <= failBefore ? failReason : null;
                sub[head] = null;
                head = (head + 1) % sub.length;
                count--;
                currentAborted = false;
            }
            takenSub = s;
            current = s;
            return s != null || !stopping;
        } finally {
            lock.unlock();
        }
    }

    /** Whether the sender should park: nothing queued and not stopping. Marks it parked. */
    boolean parkSender() {
        senderParked = true;
        lock.lock();
        try {
            return count == 0 && !stopping;
        } finally {
            lock.unlock();
        }
    }

    void senderAwake() {
        senderParked = false;
    }

    /**
     * A submitting thread that holds the send lock claims the idle send side for a caller-run of
     * {@code s}: only when nothing is queued or current and the lane is not stopping.
     */
    boolean claimForCallerRun(Submission s) {
        lock.lock();
        try {
            if (stopping || count > 0 || current != null) {
                return false;
            }
            current = s;
            currentAborted = false;
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** {@link #endCallerRun}: the caller reports the rest of its lane's plan. */
    static final int DROP_REST = 1;
    /** {@link #endCallerRun}: the caller retires the dead connection (the lane is stopping). */
    static final int RETIRE_HERE = 2;

    /**
     * A caller-run ends. The parts of its lane's plan from {@code rest} on (rest >= 0: its connection
     * died first) go to the sender, unless the batch was aborted or the lane is stopping: then the
     * caller reports them ({@link #DROP_REST}). A dead connection may hold parts that went into the
     * ring after the receiver's drain: the sender is woken to retire it, or, when stopping, the caller
     * does ({@link #RETIRE_HERE}).
     */
    int endCallerRun(Submission s, int st, int rest, boolean connectionDead) {
        Thread wake = null;
        int result = 0;
        lock.lock();
        try {
            // hand the rest over before letting go of current: abort must find it queued or current
            if (rest >= 0 && !currentAborted && !stopping) {
                wake = offerLocked(s, st, rest);
            } else {
                if (rest >= 0) {
                    result |= DROP_REST;
                }
                if (connectionDead) {
                    if (stopping) {
                        result |= RETIRE_HERE;
                    } else {
                        wake = senderLocked();
                    }
                }
            }
            current = null;
        } finally {
            lock.unlock();
        }
        if (wake != null) {
            LockSupport.unpark(wake);
        }
        return result;
    }

    /** Whether the batch being sent was aborted: the send side stops sending it. */
    boolean isCurrentAborted() {
        return currentAborted;
    }

    /**
     * Aborts {@code work} on this lane: takes its queued entries out (handing them to {@code dropped}
     * outside the lock) and, when it is being sent, marks it so that the send side drops the rest.
     * Never blocks on I/O.
     */
    void abort(Submission work, Dropped dropped) {
        Submission[] out = null;
        int[] outStart = null;
        int[] outSkip = null;
        int n = 0;
        lock.lock();
        try {
            for (int q = 0; q < count; q++) {
                int slot = (head + q) % sub.length;
                if (sub[slot] == work) {
                    if (out == null) {
                        out = new Submission[count];
                        outStart = new int[count];
                        outSkip = new int[count];
                    }
                    out[n] = work;
                    outStart[n] = start[slot];
                    outSkip[n++] = skip[slot];
                    removeAt(q--);
                }
            }
            if (current == work) {
                currentAborted = true;
            }
        } finally {
            lock.unlock();
        }
        for (int k = 0; k < n; k++) {
            dropped.drop(out[k], outStart[k], outSkip[k]);
        }
    }

    private void removeAt(int q) {
        int len = sub.length;
        for (int j = q; j < count - 1; j++) {
            int to = (head + j) % len;
            int from = (head + j + 1) % len;
            sub[to] = sub[from];
            start[to] = start[from];
            seq[to] = seq[from];
            skip[to] = skip[from];
        }
        sub[(head + count - 1) % len] = null;
        count--;
    }

    /** Batches already queued when a connect failed fail at once instead of retrying one by one. */
    void rememberConnectFailure(String reason) {
        lock.lock();
        try {
            failBefore = seqCounter;
            failReason = reason;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Stops the lane: nothing more is queued; the queued batches go to {@code dropped}. Returns the
     * sender thread, or null when none was started.
     */
    Thread stop(Dropped dropped) {
        Submission[] out;
        int[] outStart;
        int[] outSkip;
        Thread snd;
        lock.lock();
        try {
            stopping = true;
            out = new Submission[count];
            outStart = new int[count];
            outSkip = new int[count];
            for (int q = 0; q < count; q++) {
                int slot = (head + q) % sub.length;
                out[q] = sub[slot];
                outStart[q] = start[slot];
                outSkip[q] = skip[slot];
                sub[slot] = null;
            }
            count = 0;
            snd = sender;
        } finally {
            lock.unlock();
        }
        for (int q = 0; q < out.length; q++) {
            dropped.drop(out[q], outStart[q], outSkip[q]);
        }
        return snd;
    }
}
