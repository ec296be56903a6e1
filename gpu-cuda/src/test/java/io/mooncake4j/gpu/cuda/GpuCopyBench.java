package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamQuery;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDriverGetVersion;
import static jcuda.runtime.JCuda.cudaDeviceSynchronize;
import static jcuda.runtime.JCuda.cudaMemcpy;
import static jcuda.runtime.JCuda.cudaSetDevice;
import static jcuda.runtime.cudaMemcpyKind.cudaMemcpyDeviceToDevice;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceCopier;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import jcuda.driver.CUdevice;
import jcuda.driver.CUevent;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/**
 * Same-process copy throughput on one GPU against raw {@code cudaMemcpy} in the same run (no JMH:
 * the work is on the device). Bytes counted are bytes copied; GB/s is 1e9 bytes per second; each
 * figure is the median of {@code REPEATS} timings of {@code ROUNDS} back-to-back operations ended by
 * one wait. Run: {@code java -cp ... io.mooncake4j.gpu.cuda.GpuCopyBench}.
 */
public final class GpuCopyBench {
    private static final int REPEATS = 7;
    private static final int ROUNDS = 100;
    private static final long WARM_UP_NANOS = 2_000_000_000L; // the GPU idles at low clocks: load it first
    private static final long BIG = 64L << 20;
    private static final int BLOCKS = 128;
    private static final long BLOCK = 64L << 10;
    /** Batches kept in flight in the batch lines: one at a time, a few as a KV-cache mover keeps, all of a timing. */
    private static final int[] IN_FLIGHT = {1, 4, ROUNDS};
    /**
     * Submitting threads of the multi-thread batch lines (Mooncake's bench runs several), each doing
     * {@code ROUNDS} batches with {@link #IN_FLIGHT_EACH} of its own in flight.
     */
    private static final int[] THREADS = {2, 4};
    private static final int IN_FLIGHT_EACH = 4;

    private GpuCopyBench() {}

    public static void main(String[] args) throws Exception {
        CudaDeviceMemoryProvider cuda = new CudaDeviceMemoryProvider();
        if (!cuda.isAvailable()) {
            System.out.println("GPU bench skipped: " + cuda.unavailabilityCause().getMessage());
            return;
        }
        System.out.println("device: " + deviceName() + ", driver API " + driverVersion() + ", " + Instant.now());
        try (DeviceAllocation a = cuda.allocate(MemoryLocation.cuda(0), 1L << 30);
                DeviceAllocation b = cuda.allocate(MemoryLocation.cuda(0), 1L << 30);
                DeviceCopier copier = cuda.openCopier(0)) {
            check(cudaSetDevice(0), "cudaSetDevice"); // the raw baseline is a plain runtime-API user
            for (long end = System.nanoTime() + WARM_UP_NANOS; System.nanoTime() < end; ) {
                copier.copy(new long[] {b.address()}, new long[] {a.address()}, new long[] {BIG}, 1).get(30, TimeUnit.SECONDS);
            }
            double raw = median(() -> {
                for (int r = 0; r < ROUNDS; r++) {
                    check(cudaMemcpy(Pointers.host(b.address()), Pointers.host(a.address()), BIG, cudaMemcpyDeviceToDevice), "cudaMemcpy");
                }
                check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
            }, BIG * ROUNDS);
            double big = median(() -> {
                CompletableFuture<Void> last = null;
                for (int r = 0; r < ROUNDS; r++) {
                    last = copier.copy(new long[] {b.address()}, new long[] {a.address()}, new long[] {BIG}, 1);
                }
                last.get(30, TimeUnit.SECONDS);
            }, BIG * ROUNDS);
            long[] dst = new long[BLOCKS];
            long[] src = new long[BLOCKS];
            long[] len = new long[BLOCKS];
            for (int i = 0; i < BLOCKS; i++) { // scattered 64 KiB pages, as a KV cache's are
                src[i] = a.address() + (long) ((i * 37) % BLOCKS) * (1L << 20);
                dst[i] = b.address() + (long) i * (1L << 20) + (512L << 10);
                len[i] = BLOCK;
            }
            for (long end = System.nanoTime() + WARM_UP_NANOS; System.nanoTime() < end; ) { // the batch path's JIT too
                copier.copy(dst, src, len, BLOCKS).get(30, TimeUnit.SECONDS);
            }
            Op copierBatch = () -> {
                CompletableFuture<Void> f = copier.copy(dst, src, len, BLOCKS);
                return () -> f.get(30, TimeUnit.SECONDS);
            };
            double[] batch = new double[IN_FLIGHT.length];
            for (int k = 0; k < IN_FLIGHT.length; k++) {
                batch[k] = inFlight(IN_FLIGHT[k], BLOCK * BLOCKS, copierBatch);
            }
            double[] threaded = new double[THREADS.length];
            for (int k = 0; k < THREADS.length; k++) {
                threaded[k] = threads(THREADS[k], BLOCK * BLOCKS, copierBatch);
            }
            double submitMicros = medianMicros(() -> {
                for (int r = 0; r < ROUNDS; r++) {
                    copier.copy(dst, src, len, BLOCKS);
                }
            }, ROUNDS);
            copier.copy(dst, src, len, BLOCKS).get(30, TimeUnit.SECONDS);
            double rawPerBlock = median(() -> {
                for (int r = 0; r < ROUNDS; r++) {
                    for (int i = 0; i < BLOCKS; i++) {
                        check(cudaMemcpy(Pointers.host(dst[i]), Pointers.host(src[i]), BLOCK, cudaMemcpyDeviceToDevice), "cudaMemcpy");
                    }
                }
                check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
            }, BLOCK * BLOCKS * ROUNDS);
            double h2d;
            double d2h;
            try (GpuMemory.Host host = new GpuMemory.Host((int) BIG)) {
                host.buffer().put(0, new byte[(int) BIG]); // touch every page first
                h2d = median(() -> copier.copy(new long[] {a.address()}, new long[] {host.address}, new long[] {BIG}, 1).get(30, TimeUnit.SECONDS), BIG);
                d2h = median(() -> copier.copy(new long[] {host.address}, new long[] {a.address()}, new long[] {BIG}, 1).get(30, TimeUnit.SECONDS), BIG);
            }
            System.out.printf("raw cudaMemcpy D2D 64 MiB                     %8.1f GB/s%n", raw);
            System.out.printf("copier D2D 64 MiB                             %8.1f GB/s  %.2fx raw (target >= 0.9x)%n", big, big / raw);
            for (int k = 0; k < IN_FLIGHT.length; k++) {
                System.out.printf("copier D2D 128 x 64 KiB, %3d in flight        %8.1f GB/s  %.2fx copier 64 MiB (target >= 0.4x), %5.1f us a batch%n",
                        IN_FLIGHT[k], batch[k], batch[k] / big, BLOCK * BLOCKS / batch[k] / 1e3);
            }
            for (int k = 0; k < THREADS.length; k++) {
                System.out.printf("copier D2D 128 x 64 KiB, %d threads x %d in flight %6.1f GB/s  %.2fx copier 64 MiB (target >= 0.4x), %5.1f us a batch%n",
                        THREADS[k], IN_FLIGHT_EACH, threaded[k], threaded[k] / big, BLOCK * BLOCKS / threaded[k] / 1e3);
            }
            System.out.printf("  copier.copy of that batch returns after      %8.1f us (host side of a batch)%n", submitMicros);
            System.out.printf("raw cudaMemcpy per 64 KiB block (128 calls)   %8.1f GB/s  %.3fx copier 64 MiB%n", rawPerBlock, rawPerBlock / big);
            System.out.printf("copier H2D 64 MiB pageable                    %8.1f GB/s%n", h2d);
            System.out.printf("copier D2H 64 MiB pageable                    %8.1f GB/s%n", d2h);
            engineLoopback(a, b, dst, src, len, raw, big, batch, threaded);
            kernelAlone(dst, src, len);
        }
    }

    /**
     * The same copies through the engine API: both allocations registered at {@code cuda:0}, requests
     * to the engine's own segment (loopback), a new batch per round as a user submits them, with the
     * same numbers of batches in flight as the copier's lines ({@code copierBatch}), in the same run.
     */
    private static void engineLoopback(DeviceAllocation a, DeviceAllocation b, long[] dst, long[] src, long[] len,
            double raw, double copierBig, double[] copierBatch, double[] copierThreaded) throws Exception {
        try (TransferEngine engine = GpuEngines.create()) {
            engine.registerMemory(a.address(), a.length(), "cuda:0");
            engine.registerMemory(b.address(), b.length(), "cuda:0");
            Segment self = engine.openSegment(engine.localSegmentName());
            Op bigRound = () -> {
                TransferBatch round = engine.newBatch(1).write(self, a.address(), b.address(), BIG).submit();
                return () -> joinAll(round);
            };
            Op batchRound = () -> {
                TransferBatch round = batchRound(engine, self, dst, src, len).submit();
                return () -> joinAll(round);
            };
            for (long end = System.nanoTime() + WARM_UP_NANOS; System.nanoTime() < end; ) {
                inFlight(ROUNDS, BIG, bigRound);
                inFlight(ROUNDS, BLOCK * BLOCKS, batchRound);
            }
            double engineBig = inFlight(ROUNDS, BIG, bigRound);
            System.out.printf("engine loopback D2D 64 MiB, %3d in flight     %8.1f GB/s  %.2fx raw, %.2fx copier 64 MiB%n",
                    ROUNDS, engineBig, engineBig / raw, engineBig / copierBig);
            for (int k = 0; k < IN_FLIGHT.length; k++) {
                double engineBatch = inFlight(IN_FLIGHT[k], BLOCK * BLOCKS, batchRound);
                System.out.printf("engine loopback D2D 128 x 64 KiB, %3d in flight %6.1f GB/s  %.2fx copier 64 MiB (target >= 0.4x),"
                                + " %.2fx engine 64 MiB, %.2fx the copier's batch; %5.1f us a batch%n",
                        IN_FLIGHT[k], engineBatch, engineBatch / copierBig, engineBatch / engineBig, engineBatch / copierBatch[k],
                        BLOCK * BLOCKS / engineBatch / 1e3);
            }
            for (int k = 0; k < THREADS.length; k++) {
                double engineBatch = threads(THREADS[k], BLOCK * BLOCKS, batchRound);
                System.out.printf("engine loopback D2D 128 x 64 KiB, %d threads x %d in flight %6.1f GB/s  %.2fx copier 64 MiB (target >= 0.4x),"
                                + " %.2fx the copier's with as many threads; %5.1f us a batch%n",
                        THREADS[k], IN_FLIGHT_EACH, engineBatch, engineBatch / copierBig, engineBatch / copierThreaded[k],
                        BLOCK * BLOCKS / engineBatch / 1e3);
            }
            TransferBatch[] rounds = new TransferBatch[ROUNDS];
            double submitMicros = submitMicros(rounds, r -> batchRound(engine, self, dst, src, len));
            double buildMicros = medianMicros(() -> { // the caller's part alone: built, never submitted
                for (int r = 0; r < ROUNDS; r++) {
                    rounds[r] = batchRound(engine, self, dst, src, len);
                }
            }, ROUNDS);
            System.out.printf("  newBatch + 128 writes + submit returns after %8.1f us (host side of a batch, against copier.copy's above);"
                    + " newBatch + 128 writes alone %.1f us%n", submitMicros, buildMicros);
            // Where the engine's host time goes: per round (one write a batch) or per request (the
            // rest, over 127 more writes); and whether allocating a batch a round costs (reset batches).
            double oneMicros = submitMicros(rounds, r -> engine.newBatch(1).write(self, src[0], dst[0], len[0]));
            TransferBatch[] reused = new TransferBatch[ROUNDS];
            for (int r = 0; r < ROUNDS; r++) {
                reused[r] = engine.newBatch(BLOCKS);
            }
            double resetMicros = submitMicros(rounds, r -> {
                TransferBatch round = reused[r].reset();
                for (int i = 0; i < BLOCKS; i++) {
                    round.write(self, src[i], dst[i], len[i]);
                }
                return round;
            });
            System.out.printf("  newBatch + 1 write + submit returns after     %8.1f us (a round's fixed host cost); so %.0f ns a request more;"
                            + " reset batches + 128 writes + submit %.1f us%n",
                    oneMicros, (submitMicros - oneMicros) * 1e3 / (BLOCKS - 1), resetMicros);
        }
    }

    /** A round's batch, built and not submitted yet, for slot {@code r} of the rounds in flight. */
    private interface Round {
        TransferBatch build(int r);
    }

    /**
     * The median host time, over {@code REPEATS} timings, of building and submitting {@code ROUNDS}
     * batches back to back (all in flight), the rounds joined after each timing.
     */
    private static double submitMicros(TransferBatch[] rounds, Round round) {
        double[] submit = new double[REPEATS];
        for (int rep = -1; rep < REPEATS; rep++) { // the first is a warm-up
            long t0 = System.nanoTime();
            for (int r = 0; r < ROUNDS; r++) {
                rounds[r] = round.build(r).submit();
            }
            double micros = (System.nanoTime() - t0) / 1e3 / ROUNDS;
            joinAll(rounds);
            if (rep >= 0) {
                submit[rep] = micros;
            }
        }
        Arrays.sort(submit);
        return submit[REPEATS / 2];
    }

    /** A new batch of the {@code BLOCKS} scattered writes, as a user builds one per round. */
    private static TransferBatch batchRound(TransferEngine engine, Segment self, long[] dst, long[] src, long[] len) {
        TransferBatch round = engine.newBatch(BLOCKS);
        for (int i = 0; i < BLOCKS; i++) {
            round.write(self, src[i], dst[i], len[i]);
        }
        return round;
    }

    /** Something started that can be waited for. */
    private interface Started {
        void await() throws Exception;
    }

    /** Starts one operation. */
    private interface Op {
        Started start() throws Exception;
    }

    /**
     * GB/s (median of {@link #REPEATS}) of {@link #ROUNDS} operations of {@code bytes} each, at most
     * {@code inFlight} unfinished at a time: the oldest is waited for before the next starts.
     */
    private static double inFlight(int inFlight, long bytes, Op op) throws Exception {
        return median(() -> rounds(inFlight, op), bytes * ROUNDS);
    }

    /**
     * GB/s (median of {@link #REPEATS}) of {@code threads} threads each doing {@link #ROUNDS}
     * operations of {@code bytes}, {@link #IN_FLIGHT_EACH} of its own in flight; timed from their
     * common start to the last one's end.
     */
    private static double threads(int threads, long bytes, Op op) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "gpu-bench-submitter");
            t.setDaemon(true);
            return t;
        });
        try {
            return median(() -> {
                CountDownLatch go = new CountDownLatch(1);
                List<Future<Void>> running = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    running.add(pool.submit(() -> {
                        go.await();
                        rounds(IN_FLIGHT_EACH, op);
                        return null;
                    }));
                }
                go.countDown();
                for (Future<Void> f : running) {
                    f.get(60, TimeUnit.SECONDS);
                }
            }, bytes * ROUNDS * threads);
        } finally {
            pool.shutdownNow();
        }
    }

    /** {@link #ROUNDS} operations, at most {@code inFlight} unfinished: the oldest is waited for before the next starts. */
    private static void rounds(int inFlight, Op op) throws Exception {
        Started[] ring = new Started[inFlight];
        for (int r = 0; r < ROUNDS; r++) {
            int slot = r % inFlight;
            if (ring[slot] != null) {
                ring[slot].await();
            }
            ring[slot] = op.start();
        }
        for (Started s : ring) {
            if (s != null) {
                s.await();
            }
        }
    }

    private static void joinAll(TransferBatch... batches) {
        for (TransferBatch batch : batches) {
            if (!batch.join().isAllCompleted()) {
                throw new IllegalStateException("a loopback batch did not complete: " + batch.status(0) + " " + batch.failureReason(0));
            }
        }
    }

    /** The gather kernel without the copier: GPU time from events, host time of the launches. */
    private static void kernelAlone(long[] dst, long[] src, long[] len) throws Exception {
        try (ContextScope ignored = CudaDriver.instance().enter(0)) {
            CUstream stream = new CUstream();
            CudaDriver.check(cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
            CUevent start = new CUevent();
            CUevent stop = new CUevent();
            CudaDriver.check(cuEventCreate(start, 0), "cuEventCreate");
            CudaDriver.check(cuEventCreate(stop, 0), "cuEventCreate");
            for (long perCta : new long[] {16384, 32768, 65536}) {
                GatherKernel kernel = new GatherKernel(perCta);
                double[] gpu = new double[REPEATS];
                double[] host = new double[REPEATS];
                for (int rep = -1; rep < REPEATS; rep++) {
                    long t0 = System.nanoTime();
                    CudaDriver.check(cuEventRecord(start, stream), "cuEventRecord");
                    for (int r = 0; r < ROUNDS; r++) {
                        int list = r % GatherKernel.RING; // as the copier fills a batch's list, and launches it
                        kernel.fill(list, dst, src, len, BLOCKS, BLOCK, r + 1);
                        kernel.launch(list, stream);
                    }
                    CudaDriver.check(cuEventRecord(stop, stream), "cuEventRecord");
                    long t1 = System.nanoTime();
                    CudaDriver.check(cuEventSynchronize(stop), "cuEventSynchronize");
                    float[] ms = new float[1];
                    CudaDriver.check(cuEventElapsedTime(ms, start, stop), "cuEventElapsedTime");
                    if (rep >= 0) {
                        gpu[rep] = BLOCK * BLOCKS * ROUNDS / (ms[0] * 1e6);
                        host[rep] = (t1 - t0) / 1e3 / ROUNDS;
                    }
                }
                kernel.unload();
                Arrays.sort(gpu);
                Arrays.sort(host);
                System.out.printf("gather kernel alone, %2d KiB a CTA: GPU %8.1f GB/s (events), host %6.1f us a launch%n",
                        perCta >> 10, gpu[REPEATS / 2], host[REPEATS / 2]);
            }
            GatherKernel kernel = new GatherKernel();
            int tiny = 200;
            long l0 = System.nanoTime();
            for (int i = 0; i < tiny; i++) {
                kernel.add(dst[0], src[0], 16, stream);
                kernel.flush(i + 1, stream);
            }
            long l1 = System.nanoTime();
            CudaDriver.check(cuStreamSynchronize(stream), "cuStreamSynchronize");
            double[] one = new double[REPEATS * 3];
            for (int j = 0; j < one.length; j++) {
                CudaDriver.check(cuEventRecord(start, stream), "cuEventRecord");
                for (int i = 0; i < BLOCKS; i++) {
                    kernel.add(dst[i], src[i], len[i], stream);
                }
                kernel.flush(j + 1, stream);
                CudaDriver.check(cuEventRecord(stop, stream), "cuEventRecord");
                CudaDriver.check(cuEventSynchronize(stop), "cuEventSynchronize");
                float[] ms = new float[1];
                CudaDriver.check(cuEventElapsedTime(ms, start, stop), "cuEventElapsedTime");
                one[j] = ms[0] * 1e3;
            }
            Arrays.sort(one);
            System.out.printf("one 16-byte gather launch: host %.2f us; one 128 x 64 KiB launch alone on the GPU: %.2f us (events)%n",
                    (l1 - l0) / 1e3 / tiny, one[one.length / 2]);
            int calls = 1000;
            long f0 = 0;
            long f1 = 0;
            long f2 = 0;
            for (int pass = 0; pass < 2; pass++) { // the first pass warms both up
                f0 = System.nanoTime();
                for (int j = 0; j < calls; j++) {
                    for (int i = 0; i < BLOCKS; i++) {
                        kernel.add(dst[i], src[i], len[i], stream);
                    }
                    kernel.discard();
                }
                f1 = System.nanoTime();
                for (int j = 0; j < calls; j++) {
                    kernel.fill(j % GatherKernel.RING, dst, src, len, BLOCKS, BLOCK, j + 1);
                }
                f2 = System.nanoTime();
            }
            kernel.unload();
            System.out.printf("host cost of filling a 128-entry list: entry by entry %.2f us, in bulk (the copier's way) %.2f us%n",
                    (f1 - f0) / 1e3 / calls, (f2 - f1) / 1e3 / calls);
            long t0 = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                cuEventRecord(stop, stream);
            }
            long t1 = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                cuStreamQuery(stream);
            }
            long t2 = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                CudaDriver.instance().enter(0).close();
            }
            long t3 = System.nanoTime();
            System.out.printf("host cost of one cuEventRecord %.2f us, cuStreamQuery %.2f us, context push+pop %.2f us%n",
                    (t1 - t0) / 1e3 / calls, (t2 - t1) / 1e3 / calls, (t3 - t2) / 1e3 / calls);
            cuEventDestroy(start);
            cuEventDestroy(stop);
            cuStreamDestroy(stream);
        }
    }

    /** Median microseconds per operation of {@code ops} operations, after one warm-up. */
    private static double medianMicros(Run run, int ops) throws Exception {
        run.run();
        double[] t = new double[REPEATS];
        for (int i = 0; i < REPEATS; i++) {
            long t0 = System.nanoTime();
            run.run();
            t[i] = (System.nanoTime() - t0) / 1e3 / ops;
        }
        Arrays.sort(t);
        return t[REPEATS / 2];
    }

    interface Run {
        void run() throws Exception;
    }

    /** GB/s of the median of {@link #REPEATS} timed runs after one warm-up run. */
    static double median(Run run, long bytes) throws Exception {
        run.run();
        double[] rates = new double[REPEATS];
        for (int i = 0; i < REPEATS; i++) {
            long t0 = System.nanoTime();
            run.run();
            rates[i] = bytes / (double) (System.nanoTime() - t0);
        }
        Arrays.sort(rates);
        return rates[REPEATS / 2];
    }

    private static String deviceName() {
        CUdevice dev = new CUdevice();
        CudaDriver.check(cuDeviceGet(dev, 0), "cuDeviceGet");
        byte[] name = new byte[256];
        CudaDriver.check(cuDeviceGetName(name, name.length, dev), "cuDeviceGetName");
        int end = 0;
        while (end < name.length && name[end] != 0) {
            end++;
        }
        return new String(name, 0, end, StandardCharsets.US_ASCII);
    }

    private static String driverVersion() {
        int[] v = new int[1];
        CudaDriver.check(cuDriverGetVersion(v), "cuDriverGetVersion");
        return v[0] / 1000 + "." + (v[0] % 1000) / 10;
    }

    private static void check(int result, String call) {
        if (result != 0) {
            throw new IllegalStateException(call + " failed: " + jcuda.runtime.JCuda.cudaGetErrorString(result));
        }
    }
}
