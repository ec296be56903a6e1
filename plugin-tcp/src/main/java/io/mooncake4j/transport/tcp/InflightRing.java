package io.mooncake4j.transport.tcp;

import io.mooncake4j.TransferStatus;
import io.mooncake4j.spi.Submission;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * A lane's parts in flight, in the order they were sent (protocol v2): the send side appends at the
 * tail, the receiver matches each answer with the oldest part and pops it. Preallocated primitive
 * arrays: no object per part. Single producer (the holder of the lane's send lock), single consumer
 * (the receiver, or the send side after joining it).
 */
final class InflightRing {
    static final int SIZE = 1024; // power of two
    private static final int MASK = SIZE - 1;

    private final Submission[] sub = new Submission[SIZE];
    private final int[] request = new int[SIZE];
    private final boolean[] write = new boolean[SIZE];
    private final boolean[] gpu = new boolean[SIZE];
    private final long[] address = new long[SIZE];
    private final long[] length = new long[SIZE];
    private volatile long head;
    private volatile long tail;
    private volatile Thread waiter; // the producer parked for space

    boolean isEmpty() {
        return head == tail;
    }

    boolean isFull() {
        return tail - head >= SIZE;
    }

    /**
     * Records a part at the tail ({@code onGpu}: its local memory is GPU memory, staged); returns
     * whether it is the only one in flight. Producer only.
     */
    boolean add(Submission s, int i, boolean isWrite, long local, long len, boolean onGpu) {
        long t = tail;
        int k = (int) t & MASK;
        sub[k] = s;
        request[k] = i;
        write[k] = isWrite;
        gpu[k] = onGpu;
        address[k] = local;
        length[k] = len;
        boolean first = t == head;
        tail = t + 1;
        return first;
    }

    /** Parks the producer until a slot is free or {@code c} dies. */
    void awaitSpace(TcpConnection c) {
        waiter = Thread.currentThread();
        try {
            while (isFull() && !c.dead) {
                LockSupport.parkNanos(this, TimeUnit.MILLISECONDS.toNanos(1));
            }
        } finally {
            waiter = null;
        }
    }

    /** The slot of the oldest part, or -1 when none is in flight. Consumer only. */
    int oldest() {
        long h = head;
        return h == tail ? -1 : (int) h & MASK;
    }

    Submission submission(int k) {
        return sub[k];
    }

    int request(int k) {
        return request[k];
    }

    boolean isWrite(int k) {
        return write[k];
    }

    /** Whether the part's local memory is GPU memory (a READ payload is then staged). */
    boolean isGpu(int k) {
        return gpu[k];
    }

    long address(int k) {
        return address[k];
    }

    long length(int k) {
        return length[k];
    }

    /** Pops the oldest part (answered). Consumer only. */
    void pop() {
        long h = head;
        sub[(int) h & MASK] = null;
        head = h + 1;
        wakeProducer();
    }

    /** Reports every part still in flight with {@code status}: their connection is gone. Consumer only. */
    void drain(TransferStatus status, String reason, TcpCounters counters) {
        long h = head;
        for (long t = tail; h < t; h++) {
            int k = (int) h & MASK;
            Submission s = sub[k];
            sub[k] = null;
            if (s != null) {
                counters.partsFailed.increment();
                s.partFailed(request[k], status, reason);
            }
        }
        head = h;
        wakeProducer();
    }

    private void wakeProducer() {
        Thread w = waiter;
        if (w != null) {
            LockSupport.unpark(w);
        }
    }
}
