package io.mooncake4j.samples.soak;

import io.mooncake4j.HostMemory;
import io.mooncake4j.Opcode;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.samples.bench.VerifyPattern;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;

/**
 * One soak thread. Each round it WRITEs a batch of 1..{@value #MAX_BATCH} requests of random sizes
 * (log-uniform in [min, max]) at random, unaligned offsets of random targets, with bytes new to the
 * round, then READs them back into another area in a second batch and compares every byte. It owns
 * {@value #MAX_BATCH} slots of {@link #slotLength} bytes in every target (request j of a batch uses
 * slot j), so threads never overlap and a byte read back can only differ if a transfer moved the
 * wrong bytes.
 */
final class SoakWorker implements Runnable {
    static final int MAX_BATCH = 4;
    /** Room for an unaligned offset inside a slot. */
    static final int SLACK = 4096;

    private final int id;
    private final TransferEngine engine;
    private final List<Segment> targets;
    private final long min;
    private final long max;
    private final long deadlineNanos;
    private final Duration wait;
    private final SoakCounters counters;
    private final SplittableRandom random;
    private final VerifyPattern pattern;

    SoakWorker(int id, TransferEngine engine, List<Segment> targets, long min, long max, long seed,
            long deadlineNanos, SoakCounters counters) {
        this.id = id;
        this.engine = engine;
        this.targets = targets;
        this.min = min;
        this.max = max;
        this.deadlineNanos = deadlineNanos;
        this.wait = engine.config().transferTimeout().plusSeconds(10);
        this.counters = counters;
        this.random = new SplittableRandom(seed * 31 + id);
        this.pattern = new VerifyPattern(seed);
    }

    /** The bytes one thread uses in each slot of each target. */
    static long slotLength(long max) {
        return max + SLACK;
    }

    /** The bytes each target must serve for {@code threads} threads. */
    static long targetLength(int threads, long max) {
        return (long) threads * MAX_BATCH * slotLength(max);
    }

    @Override
    public void run() {
        try (HostMemory local = engine.allocate(2L * MAX_BATCH * max)) {
            long round = 0;
            while (System.nanoTime() - deadlineNanos < 0) {
                round(local, round++);
            }
        }
    }

    private void round(HostMemory local, long round) {
        int n = 1 + random.nextInt(MAX_BATCH);
        Segment[] seg = new Segment[n];
        long[] remote = new long[n];
        long[] len = new long[n];
        long[] block = new long[n];
        for (int j = 0; j < n; j++) {
            seg[j] = targets.get(random.nextInt(targets.size()));
            len[j] = size();
            long slot = seg[j].buffers().get(0).address() + ((long) id * MAX_BATCH + j) * slotLength(max);
            remote[j] = slot + random.nextLong(slotLength(max) - len[j] + 1);
            block[j] = ((long) id << 48) | (round << 3) | j;
            pattern.fill(source(local, j, len[j]), block[j]);
            sink(local, j, len[j]).put(0, (byte) ~pattern.byteAt(block[j], 0)); // a stale first byte shows
        }
        boolean[] ok = transfer(Opcode.WRITE, local, seg, remote, len, new boolean[n]);
        ok = transfer(Opcode.READ, local, seg, remote, len, ok);
        for (int j = 0; j < n; j++) {
            if (ok[j]) {
                long at = pattern.firstMismatch(sink(local, j, len[j]), block[j]);
                if (at >= 0) {
                    counters.corrupted(len[j] + " bytes at 0x" + Long.toHexString(remote[j]) + " of " + seg[j].name()
                            + " read back differ from what was written, first at byte " + at);
                }
            }
        }
    }

    /**
     * Submits the batch of {@code op}: every request for WRITE, for READ those whose WRITE completed
     * ({@code ok}); waits, counts, and returns which completed.
     */
    private boolean[] transfer(Opcode op, HostMemory local, Segment[] seg, long[] remote, long[] len, boolean[] ok) {
        boolean write = op == Opcode.WRITE;
        int n = seg.length;
        boolean[] done = new boolean[n];
        int[] index = new int[n];
        TransferBatch b = engine.newBatch(n);
        int k = 0;
        for (int j = 0; j < n; j++) {
            if (write || ok[j]) {
                long at = local.address() + (write ? j : MAX_BATCH + j) * max;
                b.add(op, seg[j], at, remote[j], len[j]);
                index[k++] = j;
            }
        }
        if (k == 0) {
            return done;
        }
        try {
            b.submit();
            if (!b.await(wait)) {
                throw new IllegalStateException("batch still pending after " + wait.toSeconds() + " s");
            }
            for (int i = 0; i < k; i++) {
                int j = index[i];
                TransferStatus st = b.status(i);
                if (st == TransferStatus.COMPLETED) {
                    counters.completed(len[j]);
                    done[j] = true;
                } else {
                    counters.failed(op + " of " + len[j] + " bytes " + (write ? "to " : "from ") + seg[j].name()
                            + " ended " + st + ": " + b.failureReason(i));
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        } catch (RuntimeException e) {
            for (int i = 0; i < k; i++) {
                counters.failed(op + " batch: " + e);
            }
        } finally {
            b.close();
        }
        return done;
    }

    /** Log-uniform in [min, max]: as many 4 KiB transfers as 4 MiB ones per size decade. */
    private long size() {
        double lo = Math.log(min);
        double hi = Math.log(max);
        return Math.min(max, Math.max(min, (long) Math.exp(lo + random.nextDouble() * (hi - lo))));
    }

    private ByteBuffer source(HostMemory local, int j, long len) {
        return local.buffer((long) j * max, (int) len);
    }

    private ByteBuffer sink(HostMemory local, int j, long len) {
        return local.buffer((long) (MAX_BATCH + j) * max, (int) len);
    }
}
