package io.mooncake4j.gpu.cuda;

import static jcuda.runtime.JCuda.cudaDeviceSynchronize;
import static jcuda.runtime.JCuda.cudaMemcpy;
import static jcuda.runtime.JCuda.cudaSetDevice;
import static jcuda.runtime.cudaMemcpyKind.cudaMemcpyDeviceToDevice;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.testkit.DeviceTargetProcess;
import io.mooncake4j.testkit.TargetProcessHandle;
import java.util.Arrays;

/**
 * CUDA IPC between two processes against raw {@code cudaMemcpy} device to device in this process,
 * in the same run: 64 MiB WRITEs into, and READs out of, a child JVM's {@code cuda:0} buffer through
 * the engine (a new batch per copy, {@code ROUNDS} submitted back to back, then joined). GB/s is 1e9
 * bytes copied per second, the median of {@code REPEATS} timings. Run: {@code java -cp ...
 * io.mooncake4j.gpu.cuda.CudaIpcBench}.
 */
public final class CudaIpcBench {
    private static final int REPEATS = 7;
    private static final int ROUNDS = 100;
    private static final long BIG = 64L << 20;
    private static final long WARM_UP_NANOS = 500_000_000L;

    private CudaIpcBench() {}

    public static void main(String[] args) throws Exception {
        CudaDeviceMemoryProvider cuda = new CudaDeviceMemoryProvider();
        if (!cuda.isAvailable()) {
            System.out.println("CUDA IPC bench skipped: " + cuda.unavailabilityCause().getMessage());
            return;
        }
        try (TargetProcessHandle child = CudaIpcGpuTest.startTarget(BIG);
                TransferEngine engine = GpuEngines.create();
                DeviceMemory local = engine.allocate(BIG, MemoryLocation.cuda(0));
                DeviceAllocation a = cuda.allocate(MemoryLocation.cuda(0), BIG);
                DeviceAllocation b = cuda.allocate(MemoryLocation.cuda(0), BIG)) {
            Segment peer = engine.openSegment(child.segment);
            Run write = () -> rounds(engine, peer, true, local.address(), child.address);
            Run read = () -> rounds(engine, peer, false, local.address(), child.address);
            check(cudaSetDevice(0), "cudaSetDevice");
            Run raw = () -> {
                for (int r = 0; r < ROUNDS; r++) {
                    check(cudaMemcpy(Pointers.host(b.address()), Pointers.host(a.address()), BIG, cudaMemcpyDeviceToDevice), "cudaMemcpy");
                }
                check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
            };
            for (long end = System.nanoTime() + WARM_UP_NANOS; System.nanoTime() < end; ) {
                raw.run();
                write.run();
                read.run();
            }
            double rawRate = median(raw);
            double writeRate = median(write);
            double readRate = median(read);
            verifyDelivery(child, engine, peer, local);
            System.out.printf("raw cudaMemcpy D2D 64 MiB, this process       %8.1f GB/s%n", rawRate);
            System.out.printf("CUDA IPC WRITE 64 MiB into another process    %8.1f GB/s  %.2fx raw D2D (target >= 0.8x)%n",
                    writeRate, writeRate / rawRate);
            System.out.printf("CUDA IPC READ 64 MiB from another process     %8.1f GB/s  %.2fx raw D2D (target >= 0.8x)%n",
                    readRate, readRate / rawRate);
            System.out.println("CUDA IPC counters " + engine.counters());
        }
    }

    private static void rounds(TransferEngine engine, Segment peer, boolean write, long local, long remote) {
        TransferBatch[] batches = new TransferBatch[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            TransferBatch batch = engine.newBatch(1);
            batches[r] = (write ? batch.write(peer, local, remote, BIG) : batch.read(peer, local, remote, BIG)).submit();
        }
        for (TransferBatch batch : batches) {
            if (!batch.join().isAllCompleted()) {
                throw new IllegalStateException("an IPC copy did not complete: " + batch.status(0) + " " + batch.failureReason(0));
            }
        }
    }

    /** The figures count only if the bytes arrived: one WRITE of a pattern, checked in the child. */
    private static void verifyDelivery(TargetProcessHandle child, TransferEngine engine, Segment peer, DeviceMemory local) throws Exception {
        byte[] data = GpuMemory.pattern((int) BIG, 21);
        GpuMemory.write(local.address(), data);
        engine.write(peer, local.address(), child.address, BIG);
        long crc = CudaIpcGpuTest.childCrc(child, 0, (int) BIG);
        if (crc != DeviceTargetProcess.crc(data)) {
            throw new IllegalStateException("the child's buffer does not hold what was written through IPC");
        }
    }

    private interface Run {
        void run() throws Exception;
    }

    private static double median(Run run) throws Exception {
        double[] rates = new double[REPEATS];
        for (int i = 0; i < REPEATS; i++) {
            long t0 = System.nanoTime();
            run.run();
            rates[i] = BIG * ROUNDS / (double) (System.nanoTime() - t0);
        }
        Arrays.sort(rates);
        return rates[REPEATS / 2];
    }

    private static void check(int result, String call) {
        if (result != 0) {
            throw new IllegalStateException(call + " failed: " + jcuda.runtime.JCuda.cudaGetErrorString(result));
        }
    }
}
