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

/**
 * GPU-aware TCP throughput between two processes on loopback against host-memory TCP and pinned
 * host-to-device copies in the same run: this JVM and a {@link DeviceTargetProcess} child each hold
 * a 64 MiB window on {@code cuda:0} and one in host memory; each round moves the window as a batch
 * of 64 requests of 1 MiB, two batches in flight. Bytes counted are payload bytes; GB/s is 1e9 bytes
 * per second; each figure is the median of seven timings ({@link GpuCopyBench#median}) of {@value #ROUNDS}
 * rounds after one warm-up. Run: {@code java -cp ... io.mooncake4j.gpu.cuda.GpuTcpBench}.
 */
public final class GpuTcpBench {
    private static final int ROUNDS = 8;
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
            double hostWrite = GpuCopyBench.median(() -> rounds(engine, peer, Opcode.WRITE, host.address(), remoteHost), bytes);
            double gpuWrite = GpuCopyBench.median(() -> rounds(engine, peer, Opcode.WRITE, gpu.address(), remoteGpu), bytes);
            double hostRead = GpuCopyBench.median(() -> rounds(engine, peer, Opcode.READ, host.address(), remoteHost), bytes);
            double gpuRead = GpuCopyBench.median(() -> rounds(engine, peer, Opcode.READ, gpu.address(), remoteGpu), bytes);
            double h2d = GpuCopyBench.median(() -> {
                for (int r = 0; r < ROUNDS; r++) {
                    long last = 0;
                    for (int k = 0; k < BLOCKS; k++) {
                        last = stager.toDevice(gpu.address() + k * BLOCK, pinned.address() + k * BLOCK, BLOCK);
                    }
                    stager.await(last);
                }
            }, bytes);
            System.out.printf("host TCP WRITE (cpu:0 -> remote cpu:0): %.2f GB/s%n", hostWrite);
            System.out.printf("GPU TCP WRITE (cuda:0 -> remote cuda:0): %.2f GB/s = %.2fx host TCP WRITE (target >= 0.8x)%n",
                    gpuWrite, gpuWrite / hostWrite);
            System.out.printf("host TCP READ (remote cpu:0 -> cpu:0): %.2f GB/s%n", hostRead);
            System.out.printf("GPU TCP READ (remote cuda:0 -> cuda:0): %.2f GB/s = %.2fx host TCP READ (target >= 0.8x)%n",
                    gpuRead, gpuRead / hostRead);
            System.out.printf("pinned H2D (1 MiB copies on one stream): %.2f GB/s; GPU TCP WRITE = %.2fx, READ = %.2fx of it%n",
                    h2d, gpuWrite / h2d, gpuRead / h2d);
        }
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
