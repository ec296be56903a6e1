package io.mooncake4j;

import io.mooncake4j.testkit.FakeGpu;
import java.lang.management.ManagementFactory;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * The engine's own cost of a batch of same-process GPU requests, on CPU: 128 requests from one
 * {@code cuda:0} region to another (FakeGpu's host memory) through {@link TransferEngine} to its
 * own segment, a round timed from its first {@code write} to its end. Each line gives the wall
 * time a batch, the submitting thread's time building and submitting it, and the CPU time a batch
 * of the submitting thread (which also waits) and of FakeGpu's copier thread:
 *
 * <ul>
 *   <li>{@code instant}: FakeGpu's copier moves nothing and its future is complete at once, so the
 *       whole round (add, submit, walk, device round, ending the requests) runs on the submitting
 *       thread and its CPU time is the engine's cost; waited for with {@link TransferBatch#await} and with {@link
 *       TransferBatch#completion()} taken before submitting (a hand-off to a completion thread and
 *       back);
 *   <li>{@code copier thread, N in flight}: FakeGpu's copier memmoves 128 x 64 bytes on its own
 *       thread, as a GPU copier completes on its own; N batches are kept in flight, the oldest
 *       waited for before the next is submitted.
 *   <li>{@code instant copier, T threads}: T submitting threads at once, each as the first line, to
 *       show whether anything in the engine serialises them: the wall time a batch of all of them
 *       together, and the CPU time a batch summed over them (which grows if they contend).
 * </ul>
 *
 * Heap bytes per batch are the submitting thread's. Not run by the build; run it with {@code java
 * -cp spi/target/test-classes:spi/target/classes:native/target/classes:<dependencies>
 * io.mooncake4j.DeviceLoopbackBench [seconds]}.
 */
public final class DeviceLoopbackBench {
    private static final int REQUESTS = 128;
    private static final long BLOCK = 64 << 10;
    private static final long TINY = 64;
    private static final int REPEATS = 7;

    private DeviceLoopbackBench() {}

    public static void main(String[] args) throws Exception {
        double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 1.0;
        System.out.println("DeviceLoopbackBench " + Instant.now() + ", " + Runtime.getRuntime().availableProcessors()
                + " CPUs, JDK " + Runtime.version() + ", " + REPEATS + " timings of " + seconds + " s each, medians");
        try (TransferEngine engine = FakeGpu.installedFor(() -> TransferEngine.create(EngineConfig.builder()
                        .environment(java.util.Map.of())
                        .protocol(io.mooncake4j.testkit.InMemoryTransportProvider.PROTOCOL)
                        .localHostname("127.0.0.1")
                        .rpcPortRange(0, 0)
                        .build()));
                DeviceMemory a = engine.allocate(REQUESTS * BLOCK, MemoryLocation.cuda(0));
                DeviceMemory b = engine.allocate(REQUESTS * BLOCK, MemoryLocation.cuda(0))) {
            Segment self = engine.openSegment(engine.localSegmentName());
            long[] src = new long[REQUESTS];
            long[] dst = new long[REQUESTS];
            for (int i = 0; i < REQUESTS; i++) { // scattered pages, as GpuCopyBench's
                src[i] = a.address() + ((i * 37L) % REQUESTS) * BLOCK;
                dst[i] = b.address() + i * BLOCK;
            }
            FakeGpu.instant = true;
            try {
                report("instant copier, new batch, await()     ", seconds, 1, () -> batch(engine, self, src, dst, BLOCK), Mode.JOIN);
                report("instant copier, new batch, completion() ", seconds, 1, () -> batch(engine, self, src, dst, BLOCK), Mode.FUTURE);
                TransferBatch reused = engine.newBatch(REQUESTS);
                report("instant copier, reset batch, await()    ", seconds, 1, () -> {
                    reused.reset();
                    return fill(reused, self, src, dst, BLOCK);
                }, Mode.JOIN);
                for (int threads : new int[] {1, 2}) {
                    reportThreads("instant copier, new batch, " + threads + " thread(s)", seconds, threads,
                            () -> batch(engine, self, src, dst, BLOCK));
                }
            } finally {
                FakeGpu.instant = false;
            }
            for (int inFlight : new int[] {1, 4}) {
                report("copier thread, new batch, " + inFlight + " in flight  ", seconds, inFlight,
                        () -> batch(engine, self, src, dst, TINY), Mode.JOIN);
            }
        }
    }

    private enum Mode { JOIN, FUTURE }

    /** The next round's batch, filled and not submitted yet. */
    private interface Submit {
        TransferBatch next();
    }

    private static TransferBatch batch(TransferEngine engine, Segment self, long[] src, long[] dst, long len) {
        return fill(engine.newBatch(REQUESTS), self, src, dst, len);
    }

    private static TransferBatch fill(TransferBatch b, Segment self, long[] src, long[] dst, long len) {
        for (int i = 0; i < REQUESTS; i++) {
            b.write(self, src[i], dst[i], len);
        }
        return b;
    }

    /** Runs batches for {@code seconds}, {@code inFlight} at a time; prints the median us and heap bytes per batch. */
    private static void report(String name, double seconds, int inFlight, Submit submit, Mode mode) throws Exception {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long me = Thread.currentThread().getId();
        long[] submitNanos = new long[1]; // the submitting thread's time in building and submitting batches, per timing
        run(seconds, inFlight, submit, mode, submitNanos); // warm-up
        double[] micros = new double[REPEATS];
        double[] cpu = new double[REPEATS];
        double[] copierCpu = new double[REPEATS];
        double[] submitMicros = new double[REPEATS];
        double[] bytes = new double[REPEATS];
        for (int r = 0; r < REPEATS; r++) {
            long b0 = threads.getThreadAllocatedBytes(me);
            long c0 = threads.getCurrentThreadCpuTime();
            long k0 = cpuNanos(threads, FakeGpu.COPIER_THREAD);
            submitNanos[0] = 0;
            long t0 = System.nanoTime();
            long batches = run(seconds, inFlight, submit, mode, submitNanos);
            micros[r] = (System.nanoTime() - t0) / 1e3 / batches;
            cpu[r] = (threads.getCurrentThreadCpuTime() - c0) / 1e3 / batches;
            copierCpu[r] = (cpuNanos(threads, FakeGpu.COPIER_THREAD) - k0) / 1e3 / batches;
            submitMicros[r] = submitNanos[0] / 1e3 / batches;
            bytes[r] = (threads.getThreadAllocatedBytes(me) - b0) / (double) batches;
        }
        Arrays.sort(micros);
        Arrays.sort(cpu);
        Arrays.sort(copierCpu);
        Arrays.sort(submitMicros);
        Arrays.sort(bytes);
        int m = REPEATS / 2;
        System.out.printf("%s %6.2f us a batch (range %.2f-%.2f), build + submit %5.2f us; CPU a batch: submitting thread %5.2f us,"
                        + " FakeGpu copier %5.2f us; %5.0f heap bytes%n",
                name, micros[m], micros[0], micros[REPEATS - 1], submitMicros[m], cpu[m], copierCpu[m], bytes[m]);
    }

    /** Runs batches on {@code threads} threads at once, one in flight each; prints the median wall and CPU us per batch. */
    private static void reportThreads(String name, double seconds, int threads, Submit submit) throws Exception {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            double[] micros = new double[REPEATS + 1];
            double[] cpu = new double[REPEATS + 1];
            for (int r = 0; r <= REPEATS; r++) { // the first is the warm-up
                List<Future<long[]>> running = new ArrayList<>();
                long t0 = System.nanoTime();
                for (int t = 0; t < threads; t++) {
                    running.add(pool.submit(() -> {
                        long c0 = mx.getCurrentThreadCpuTime();
                        long n = run(seconds, 1, submit, Mode.JOIN, new long[1]);
                        return new long[] {n, mx.getCurrentThreadCpuTime() - c0};
                    }));
                }
                long batches = 0;
                long cpuNanos = 0;
                for (Future<long[]> f : running) {
                    long[] done = f.get((long) (seconds * 1000) + 30_000, TimeUnit.MILLISECONDS);
                    batches += done[0];
                    cpuNanos += done[1];
                }
                micros[r] = (System.nanoTime() - t0) / 1e3 / batches;
                cpu[r] = cpuNanos / 1e3 / batches;
            }
            micros = Arrays.copyOfRange(micros, 1, REPEATS + 1);
            cpu = Arrays.copyOfRange(cpu, 1, REPEATS + 1);
            Arrays.sort(micros);
            Arrays.sort(cpu);
            System.out.printf("%s %6.2f us a batch of all threads together (range %.2f-%.2f); CPU a batch, summed over the threads %5.2f us%n",
                    name, micros[REPEATS / 2], micros[0], micros[REPEATS - 1], cpu[REPEATS / 2]);
        } finally {
            pool.shutdownNow();
        }
    }

    /** CPU time of the live threads whose names start with {@code prefix}. */
    private static long cpuNanos(com.sun.management.ThreadMXBean threads, String prefix) {
        long sum = 0;
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith(prefix)) {
                sum += Math.max(0, threads.getThreadCpuTime(t.getId()));
            }
        }
        return sum;
    }

    private static long run(double seconds, int inFlight, Submit submit, Mode mode, long[] submitNanos) throws Exception {
        TransferBatch[] ring = new TransferBatch[inFlight];
        long end = System.nanoTime() + (long) (seconds * 1e9);
        long n = 0;
        while (System.nanoTime() - end < 0) {
            int slot = (int) (n % inFlight);
            if (ring[slot] != null) {
                finish(ring[slot], mode);
            }
            long t0 = System.nanoTime();
            TransferBatch b = submit.next();
            if (mode == Mode.FUTURE) {
                b.completion(); // before submitting, as a caller chaining on it does: completed through a completion thread
            }
            ring[slot] = b.submit();
            submitNanos[0] += System.nanoTime() - t0;
            n++;
        }
        for (TransferBatch b : ring) {
            if (b != null) {
                finish(b, mode);
            }
        }
        return n;
    }

    private static void finish(TransferBatch b, Mode mode) throws Exception {
        if (mode == Mode.FUTURE) {
            b.completion().get(10, TimeUnit.SECONDS);
        } else if (!b.await(java.time.Duration.ofSeconds(10))) {
            throw new IllegalStateException("a batch did not end within 10 s");
        }
        if (!b.isAllCompleted()) {
            throw new IllegalStateException("a loopback batch did not complete: " + b.status(0) + " " + b.failureReason(0));
        }
    }
}
