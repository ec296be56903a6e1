package io.mooncake4j.gpu.cuda;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Opcode;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceStager;
import io.mooncake4j.testkit.DeviceTargetProcess;
import io.mooncake4j.testkit.TargetProcessHandle;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;

/**
 * GPU-aware TCP throughput between two processes on loopback against host-memory TCP and pinned
 * host-to-device copies in the same run: this JVM and a {@link DeviceTargetProcess} child each hold
 * a 64 MiB window on {@code cuda:0} and one in host memory; each round moves the window as a batch
 * of 64 requests of 1 MiB, two batches in flight. Bytes counted are payload bytes; GB/s is 1e9 bytes
 * per second. A run is the median of seven timings ({@link GpuCopyBench#median}) of {@value #ROUNDS}
 * rounds after one warm-up; each figure is run {@value #TRIALS} times, host and GPU alternated, and
 * printed as the median with every run beside it, so that the host's noise shows. The last lines are
 * the tcp counters of this engine and of the target (the GPU paths' own included). Run: {@code java -cp ...
 * io.mooncake4j.gpu.cuda.GpuTcpBench}.
 */
public final class GpuTcpBench {
    private static final int ROUNDS = 8;
    private static final int TRIALS = 3;
    private static final int IN_FLIGHT = 2;
    private static final long BLOCK = 1L << 20;
    private static final int BLOCKS = 64;
    private static final long WINDOW = BLOCK * BLOCKS;

    private GpuTcpBench() {}

    public static void main(String[] args) throws Exception {
        CudaDeviceMemoryProvider cuda = new CudaDeviceMemoryProvider();
        if (!cuda.isAvailable()) {
            System.out.println("GPU TCP bench skipped: " + cuda.unavailabilityCause().getMessage());
            return;
        }
        try (TargetProcessHandle child = DeviceTargetProcess.start("tcp", WINDOW, false);
                TransferEngine engine = TcpGpuTransferGpuTest.tcpEngine();
                DeviceMemory gpu = engine.allocate(WINDOW, MemoryLocation.cuda(0));
                HostMemory host = engine.allocate(WINDOW);
                DeviceAllocation pinned = cuda.allocatePinned(WINDOW);
                DeviceStager stager = cuda.openStager()) {
            Segment peer = engine.openSegment(child.segment);
            engine.warmupSegment(child.segment);
            long remoteGpu = child.address;
            long remoteHost = DeviceTargetProcess.hostAddress(child);
            System.out.println("GPU TCP bench, " + Instant.now() + ": 2 processes on loopback, a " + (WINDOW >> 20)
                    + " MiB window of " + BLOCKS + " x " + (BLOCK >> 20) + " MiB requests per batch, " + IN_FLIGHT
                    + " batches in flight, " + engine);
            long bytes = ROUNDS * WINDOW;
            double[][] write = alternate(
                    () -> GpuCopyBench.median(() -> rounds(engine, peer, Opcode.WRITE, host.address(), remoteHost), bytes),
                    () -> GpuCopyBench.median(() -> rounds(engine, peer, Opcode.WRITE, gpu.address(), remoteGpu), bytes));
            double[][] read = alternate(
                    () -> GpuCopyBench.median(() -> rounds(engine, peer, Opcode.READ, host.address(), remoteHost), bytes),
                    () -> GpuCopyBench.median(() -> rounds(engine, peer, Opcode.READ, gpu.address(), remoteGpu), bytes));
            double[] h2d = new double[TRIALS];
            for (int t = 0; t < TRIALS; t++) {
                h2d[t] = GpuCopyBench.median(() -> {
                    for (int r = 0; r < ROUNDS; r++) {
                        long last = 0;
                        for (int k = 0; k < BLOCKS; k++) {
                            last = stager.toDevice(gpu.address() + k * BLOCK, pinned.address() + k * BLOCK, BLOCK);
                        }
                        stager.await(last);
                    }
                }, bytes);
            }
            double hostWrite = median(write[0]);
            double gpuWrite = median(write[1]);
            double hostRead = median(read[0]);
            double gpuRead = median(read[1]);
            double pinnedH2d = median(h2d);
            System.out.printf("host TCP WRITE (cpu:0 -> remote cpu:0): %.2f GB/s (runs %s)%n", hostWrite, runs(write[0]));
            System.out.printf("GPU TCP WRITE (cuda:0 -> remote cuda:0): %.2f GB/s (runs %s) = %.2fx host TCP WRITE"
                    + " (target >= 0.8x; per run %s)%n", gpuWrite, runs(write[1]), gpuWrite / hostWrite, ratios(write));
            System.out.printf("host TCP READ (remote cpu:0 -> cpu:0): %.2f GB/s (runs %s)%n", hostRead, runs(read[0]));
            System.out.printf("GPU TCP READ (remote cuda:0 -> cuda:0): %.2f GB/s (runs %s) = %.2fx host TCP READ"
                    + " (target >= 0.8x; per run %s)%n", gpuRead, runs(read[1]), gpuRead / hostRead, ratios(read));
            System.out.printf("pinned H2D (1 MiB copies on one stream): %.2f GB/s (runs %s); GPU TCP WRITE = %.2fx,"
                    + " READ = %.2fx of it%n", pinnedH2d, runs(h2d), gpuWrite / pinnedH2d, gpuRead / pinnedH2d);
            System.out.println("initiator tcp counters: " + DeviceTargetProcess.counters(engine, "tcp."));
            System.out.println("target tcp counters: " + child.command("counters tcp.").replaceFirst("^COUNTERS ", ""));
        }
    }

    /** Runs each figure {@value #TRIALS} times, alternating them: [figure][trial], GB/s. */
    private static double[][] alternate(Figure host, Figure gpu) throws Exception {
        double[][] r = new double[2][TRIALS];
        for (int t = 0; t < TRIALS; t++) {
            r[0][t] = host.measure();
            r[1][t] = gpu.measure();
        }
        return r;
    }

    private interface Figure {
        double measure() throws Exception;
    }

    private static double median(double[] runs) {
        double[] sorted = runs.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    private static String runs(double[] runs) {
        StringBuilder b = new StringBuilder();
        for (double r : runs) {
            b.append(b.length() == 0 ? "" : " ").append(String.format("%.2f", r));
        }
        return b.toString();
    }

    /** The GPU figure over the host one, trial by trial. */
    private static String ratios(double[][] figures) {
        StringBuilder b = new StringBuilder();
        for (int t = 0; t < TRIALS; t++) {
            b.append(t == 0 ? "" : " ").append(String.format("%.2fx", figures[1][t] / figures[0][t]));
        }
        return b.toString();
    }

    /** {@link #ROUNDS} batches moving the window, {@link #IN_FLIGHT} at a time; every request must complete. */
    private static void rounds(TransferEngine engine, Segment peer, Opcode op, long local, long remote) throws Exception {
        TransferBatch[] inFlight = new TransferBatch[IN_FLIGHT];
        for (int r = 0; r < ROUNDS + IN_FLIGHT; r++) {
            int slot = r % IN_FLIGHT;
            if (inFlight[slot] != null) {
                TransferBatch b = inFlight[slot];
                if (!b.await(Duration.ofSeconds(60)) || !b.isAllCompleted()) {
                    throw new IllegalStateException(op + " batch did not complete: " + firstFailure(b));
                }
                inFlight[slot] = null;
            }
            if (r < ROUNDS) {
                TransferBatch b = engine.newBatch(BLOCKS);
                for (int k = 0; k < BLOCKS; k++) {
                    b.add(op, peer, local + k * BLOCK, remote + k * BLOCK, BLOCK);
                }
                inFlight[slot] = b.submit();
            }
        }
    }

    private static String firstFailure(TransferBatch b) {
        for (int i = 0; i < BLOCKS; i++) {
            if (b.status(i) != TransferStatus.COMPLETED) {
                return "request " + i + " " + b.status(i) + ": " + b.failureReason(i);
            }
        }
        return "not done";
    }
}
