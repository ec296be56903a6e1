package io.mooncake4j.samples.bench;

import io.mooncake4j.Opcode;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.samples.cli.CommandFailure;
import java.io.PrintWriter;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;

/**
 * The timed loop of {@code transfer_engine_bench}: {@code threads} threads each build a batch of
 * {@code batch_size} requests of {@code block_size} bytes ({@link BlockLayout}), submit it, wait
 * for all of it, check every status and count it, until the duration ends. The duration is
 * measured, as Mooncake does, from starting the threads to joining them.
 */
public final class ThroughputLoop {
    private final TransferEngine engine;
    private final Segment segment;
    private final BlockLayout layout;
    private final Opcode op;

    public ThroughputLoop(TransferEngine engine, Segment segment, BlockLayout layout, Opcode op) {
        this.engine = engine;
        this.segment = segment;
        this.layout = layout;
        this.op = op;
    }

    /** What one timed run did. */
    public record Result(
            Opcode op, long blockSize, int batchSize, int threads, double seconds, long batches,
            long batchNanosTotal, long batchNanosMax) {
        /** Requests completed. */
        public long requests() {
            return batches * batchSize;
        }

        /** Bytes moved. */
        public long bytes() {
            return requests() * blockSize;
        }

        /** Requests per second. */
        public double requestsPerSecond() {
            return seconds > 0 ? requests() / seconds : 0;
        }

        /** Throughput in {@code unit} per second. */
        public double throughput(ReportUnit unit) {
            return BenchReport.throughput(bytes(), seconds, unit);
        }

        /** Mean time from creating a batch to seeing all of it end, in milliseconds. */
        public double meanBatchMillis() {
            return batches > 0 ? batchNanosTotal / 1e6 / batches : 0;
        }

        /** Longest such time, in milliseconds. */
        public double maxBatchMillis() {
            return batchNanosMax / 1e6;
        }
    }

    /**
     * Runs for {@code seconds}, printing a progress line per second to {@code progress} (null for
     * none).
     *
     * @throws CommandFailure when a request does not complete, naming the first one and why
     */
    public Result run(double seconds, PrintWriter progress, ReportUnit unit) {
        int threads = layout.threads();
        AtomicReference<String> failure = new AtomicReference<>();
        CountDownLatch failed = new CountDownLatch(1);
        LongAdder requests = new LongAdder();
        AtomicLong nanosTotal = new AtomicLong();
        AtomicLong nanosMax = new AtomicLong();
        LongAdder batches = new LongAdder();
        Shared shared = new Shared();
        Thread[] workers = new Thread[threads];
        long start = System.nanoTime();
        for (int t = 0; t < threads; t++) {
            Worker w = new Worker(t, shared, failure, failed, requests, batches, nanosTotal, nanosMax);
            workers[t] = new Thread(w, "bench-" + op.name().toLowerCase() + "-" + t);
            workers[t].setDaemon(true);
            workers[t].start();
        }
        Progress meter = progress == null ? null
                : Progress.start(progress, start, seconds, requests, layout.blockSize(), unit);
        boolean interrupted = false;
        try {
            failed.await((long) (seconds * 1e9), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            interrupted = true;
        }
        shared.stop = true;
        for (Thread w : workers) {
            joinUninterruptibly(w);
        }
        long end = System.nanoTime();
        if (meter != null) {
            meter.close();
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (failure.get() != null) {
            throw new CommandFailure(failure.get());
        }
        return new Result(op, layout.blockSize(), layout.batchSize(), threads, (end - start) / 1e9,
                batches.sum(), nanosTotal.get(), nanosMax.get());
    }

    private static void joinUninterruptibly(Thread t) {
        boolean interrupted = false;
        while (true) {
            try {
                t.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private static final class Shared {
        volatile boolean stop;
    }

    private final class Worker implements Runnable {
        private final int thread;
        private final Shared shared;
        private final AtomicReference<String> failure;
        private final CountDownLatch failed;
        private final LongAdder requests;
        private final LongAdder batchCount;
        private final AtomicLong nanosTotal;
        private final AtomicLong nanosMax;

        Worker(int thread, Shared shared, AtomicReference<String> failure, CountDownLatch failed,
                LongAdder requests, LongAdder batchCount, AtomicLong nanosTotal, AtomicLong nanosMax) {
            this.thread = thread;
            this.shared = shared;
            this.failure = failure;
            this.failed = failed;
            this.requests = requests;
            this.batchCount = batchCount;
            this.nanosTotal = nanosTotal;
            this.nanosMax = nanosMax;
        }

        @Override
        public void run() {
            int n = layout.batchSize();
            long len = layout.blockSize();
            long[] local = new long[n];
            long[] remote = new long[n];
            for (int i = 0; i < n; i++) {
                local[i] = layout.localAddress(thread, i);
                remote[i] = layout.remoteAddress(thread, i);
            }
            long total = 0;
            long max = 0;
            long count = 0;
            try {
                while (!shared.stop) {
                    long t0 = System.nanoTime();
                    TransferBatch b = engine.newBatch(n);
                    for (int i = 0; i < n; i++) {
                        b.add(op, segment, local[i], remote[i], len);
                    }
                    b.submit().join();
                    long dt = System.nanoTime() - t0;
                    for (int i = 0; i < n; i++) {
                        TransferStatus st = b.status(i);
                        if (st != TransferStatus.COMPLETED) {
                            fail(describeFailure(op, segment, thread, i, n, len, remote[i], st, b.failureReason(i)));
                            return;
                        }
                    }
                    total += dt;
                    max = Math.max(max, dt);
                    count++;
                    batchCount.increment();
                    requests.add(n);
                }
            } catch (RuntimeException e) {
                fail("thread " + thread + ": " + e.getMessage());
            } finally {
                nanosTotal.addAndGet(total);
                nanosMax.accumulateAndGet(max, Math::max);
            }
        }

        private void fail(String message) {
            failure.compareAndSet(null, message);
            shared.stop = true;
            failed.countDown();
        }
    }

    /** The message for a request that did not complete. */
    static String describeFailure(Opcode op, Segment segment, int thread, int index, int batchSize, long length,
            long remote, TransferStatus status, String reason) {
        return op + " request " + index + " of a " + batchSize + "-request batch (thread " + thread + ", "
                + length + " bytes " + (op == Opcode.READ ? "from " : "to ") + segment.name() + " at 0x"
                + Long.toHexString(remote) + ") ended " + status + (reason == null ? "" : ": " + reason);
    }
}
