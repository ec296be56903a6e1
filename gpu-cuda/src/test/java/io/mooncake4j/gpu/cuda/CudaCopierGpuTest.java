package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuCtxCreate;
import static jcuda.driver.JCudaDriver.cuCtxDestroy;
import static jcuda.driver.JCudaDriver.cuCtxGetCurrent;
import static jcuda.driver.JCudaDriver.cuCtxGetDevice;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuPointerGetAttribute;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceCopier;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUpointer_attribute;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Mooncake's GPU loopback cases on one GPU, asserting bytes. Skipped, saying why, without a GPU. */
@Tag("gpu")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class CudaCopierGpuTest {
    private static final int MIB = 1 << 20;
    private static CudaDeviceMemoryProvider cuda;
    private static DeviceCopier copier;

    @BeforeAll
    static void open() {
        CudaDeviceMemoryProvider provider = new CudaDeviceMemoryProvider();
        if (provider.isAvailable()) {
            cuda = provider;
            copier = cuda.openCopier(0);
        }
    }

    @BeforeEach
    void requireGpu() {
        GpuMemory.requireGpu(); // each test is reported skipped, with the reason, where there is no GPU
    }

    @AfterAll
    static void close() {
        if (copier != null) {
            copier.close();
        }
    }

    @Test
    void shouldLeaveNoContextCurrentWhenCallerHadNone() throws Exception {
        AtomicReference<String> seen = new AtomicReference<>();
        Thread t = new Thread(() -> {
            long before = current().value();
            try (DeviceAllocation a = cuda.allocate(MemoryLocation.cuda(0), MIB);
                    DeviceAllocation b = cuda.allocate(MemoryLocation.cuda(0), MIB)) {
                copier.copy(new long[] {b.address()}, new long[] {a.address()}, new long[] {MIB}, 1).get(30, TimeUnit.SECONDS);
                cuda.locate(a.address());
                seen.set("context " + before + " -> " + current().value());
            } catch (Exception e) {
                seen.set(e.toString());
            }
        });
        t.start();
        t.join(60_000);
        assertEquals("context 0 -> 0", seen.get());
    }

    /** What the EFA transport's GPU registration (fi_mr_regattr with FI_HMEM_CUDA) runs inside. */
    @Test
    void shouldMakeThePrimaryContextCurrentInDeviceContextAndLeaveNoneAfterwards() throws Exception {
        AtomicReference<String> seen = new AtomicReference<>();
        Thread t = new Thread(() -> {
            try {
                long before = current().value();
                CUcontext inside = cuda.inDeviceContext(0, () -> {
                    CUcontext c = new CUcontext();
                    CudaDriver.check(cuCtxGetCurrent(c), "cuCtxGetCurrent");
                    return c;
                });
                seen.set("before " + before + " inside primary=" + inside.equals(CudaDriver.instance().primaryContext(0))
                        + " after " + current().value());
            } catch (RuntimeException e) {
                seen.set(e.toString());
            }
        });
        t.start();
        t.join(60_000);
        assertEquals("before 0 inside primary=true after 0", seen.get());
    }

    @Test
    void shouldKeepCallersContextAndDeviceWhenCopying() throws Exception {
        AtomicReference<String> seen = new AtomicReference<>();
        Thread t = new Thread(() -> {
            CUdevice dev = new CUdevice();
            CudaDriver.check(cuDeviceGet(dev, 0), "cuDeviceGet");
            GpuMemory.Context own = new GpuMemory.Context(); // not the primary context the copier uses
            CudaDriver.check(cuCtxCreate(own, 0, dev), "cuCtxCreate");
            try (DeviceAllocation a = cuda.allocate(MemoryLocation.cuda(0), MIB);
                    DeviceAllocation b = cuda.allocate(MemoryLocation.cuda(0), MIB)) {
                copier.copy(new long[] {b.address()}, new long[] {a.address()}, new long[] {MIB}, 1).get(30, TimeUnit.SECONDS);
                CUdevice after = new CUdevice();
                CudaDriver.check(cuCtxGetDevice(after), "cuCtxGetDevice");
                Pointers.DevicePointer later = new Pointers.DevicePointer();
                CudaDriver.check(cuMemAlloc(later, 4096), "cuMemAlloc");
                long[] owner = new long[1];
                CudaDriver.check(cuPointerGetAttribute(Pointer.to(owner), CUpointer_attribute.CU_POINTER_ATTRIBUTE_CONTEXT, Pointers.device(later.address())),
                        "cuPointerGetAttribute(CONTEXT)");
                seen.set("current own=" + (current().value() == own.value()) + " device=" + after.equals(dev)
                        + " allocation in own=" + (owner[0] == own.value())
                        + " on " + cuda.locate(later.address()));
                cuMemFree(later);
            } catch (Exception e) {
                seen.set(e.toString());
            } finally {
                cuCtxSetCurrent(new CUcontext());
                cuCtxDestroy(own);
            }
        });
        t.start();
        t.join(60_000);
        assertEquals("current own=true device=true allocation in own=true on cuda:0", seen.get());
    }

    @Test
    void shouldReadBack4MiBExactlyWhenWrittenToDeviceAndBack() throws Exception {
        byte[] data = GpuMemory.pattern(4 * MIB, 1);
        try (GpuMemory.Host src = new GpuMemory.Host(4 * MIB);
                GpuMemory.Host back = new GpuMemory.Host(4 * MIB);
                DeviceAllocation dev = cuda.allocate(MemoryLocation.cuda(0), 4 * MIB)) {
            src.put(0, data);
            copier.copy(new long[] {dev.address()}, new long[] {src.address}, new long[] {4 * MIB}, 1).get(30, TimeUnit.SECONDS);
            copier.copy(new long[] {back.address}, new long[] {dev.address()}, new long[] {4 * MIB}, 1).get(30, TimeUnit.SECONDS);
            assertArrayEquals(data, back.get(0, 4 * MIB));
            assertArrayEquals(data, GpuMemory.read(dev.address(), 4 * MIB));
        }
    }

    @Test
    void shouldCopyEveryBlockExactlyWhenABatchHas128SmallBlocks() throws Exception {
        int n = 128;
        int slot = 256 * 1024 + 64;
        long[] dst = new long[n];
        long[] src = new long[n];
        long[] len = new long[n];
        try (DeviceAllocation from = cuda.allocate(MemoryLocation.cuda(0), (long) n * slot);
                DeviceAllocation to = cuda.allocate(MemoryLocation.cuda(0), (long) n * slot)) {
            byte[] source = GpuMemory.pattern(n * slot, 2);
            GpuMemory.write(from.address(), source);
            GpuMemory.write(to.address(), new byte[n * slot]);
            for (int i = 0; i < n; i++) {
                int block = (16 << 10) << (i % 5); // 16..256 KiB KV pages
                int skew = i % 7 == 0 ? 3 : 0; // a few unaligned blocks and odd lengths take the byte path
                src[i] = from.address() + (long) ((i * 37) % n) * slot + skew; // gathered out of order
                dst[i] = to.address() + (long) i * slot + skew;
                len[i] = block - skew;
            }
            CompletableFuture<Void> done = copier.copy(dst, src, len, n);
            java.util.Arrays.fill(len, 0); // the arrays are the caller's again once copy returns
            done.get(30, TimeUnit.SECONDS);
            byte[] result = GpuMemory.read(to.address(), n * slot);
            for (int i = 0; i < n; i++) {
                int block = (16 << 10) << (i % 5);
                int skew = i % 7 == 0 ? 3 : 0;
                int s = ((i * 37) % n) * slot + skew;
                byte[] want = new byte[slot];
                System.arraycopy(source, s, want, skew, block - skew);
                byte[] got = java.util.Arrays.copyOfRange(result, i * slot, (i + 1) * slot);
                assertArrayEquals(want, got, "block " + i + " (" + (block - skew) + " bytes)");
            }
        }
    }

    @Test
    void shouldCopyEachDirectionWhenABatchMixesHostAndDevice() throws Exception {
        int size = 256 * 1024;
        byte[] a = GpuMemory.pattern(size, 3);
        byte[] b = GpuMemory.pattern(size, 4);
        try (GpuMemory.Host host = new GpuMemory.Host(4 * size);
                DeviceAllocation dev = cuda.allocate(MemoryLocation.cuda(0), 4L * size)) {
            host.put(0, a); // host[0] -> dev[0]  (host to device)
            GpuMemory.write(dev.address() + size, b); // dev[1] -> host[1]  (device to host)
            long[] dst = {dev.address(), host.address + size, dev.address() + 2L * size, host.address + 3L * size};
            long[] src = {host.address, dev.address() + size, dev.address() + size, host.address};
            long[] len = {size, size, size, size}; // and dev[1] -> dev[2], host[0] -> host[3]
            copier.copy(dst, src, len, 4).get(30, TimeUnit.SECONDS);
            assertArrayEquals(a, GpuMemory.read(dev.address(), size), "host to device");
            assertArrayEquals(b, host.get(size, size), "device to host");
            assertArrayEquals(b, GpuMemory.read(dev.address() + 2L * size, size), "device to device");
            assertArrayEquals(a, host.get(3 * size, size), "host to host");
        }
    }

    @Test
    void shouldCopyALargeBlockWhenItGoesPastTheGatherKernel() throws Exception {
        int size = 64 * MIB;
        try (DeviceAllocation from = cuda.allocate(MemoryLocation.cuda(0), size);
                DeviceAllocation to = cuda.allocate(MemoryLocation.cuda(0), size)) {
            byte[] data = GpuMemory.pattern(size, 5);
            GpuMemory.write(from.address(), data);
            copier.copy(new long[] {to.address()}, new long[] {from.address()}, new long[] {size}, 1).get(30, TimeUnit.SECONDS);
            assertArrayEquals(data, GpuMemory.read(to.address(), size));
        }
    }

    @Test
    void shouldCopyEveryEntryWhenABatchNeedsManyLaunches() throws Exception {
        int n = 20_000 + 3; // 157 launches, the last one partly filled
        int block = 256;
        try (DeviceAllocation from = cuda.allocate(MemoryLocation.cuda(0), (long) n * block);
                DeviceAllocation to = cuda.allocate(MemoryLocation.cuda(0), (long) n * block)) {
            byte[] source = GpuMemory.pattern(n * block, 6);
            GpuMemory.write(from.address(), source);
            long[] dst = new long[n];
            long[] src = new long[n];
            long[] len = new long[n];
            for (int i = 0; i < n; i++) { // reversed, so a wrong entry shows
                src[i] = from.address() + (long) (n - 1 - i) * block;
                dst[i] = to.address() + (long) i * block;
                len[i] = block;
            }
            copier.copy(dst, src, len, n).get(30, TimeUnit.SECONDS);
            byte[] result = GpuMemory.read(to.address(), n * block);
            for (int i = 0; i < n; i++) {
                assertArrayEquals(
                        java.util.Arrays.copyOfRange(source, (n - 1 - i) * block, (n - i) * block),
                        java.util.Arrays.copyOfRange(result, i * block, (i + 1) * block), "entry " + i);
            }
        }
    }

    @Test
    void shouldCopyExactlyWhenHundredsOfBatchesAreInFlight() throws Exception {
        int batches = 768;
        int n = 16;
        int block = 4096;
        try (DeviceAllocation from = cuda.allocate(MemoryLocation.cuda(0), (long) batches * n * block);
                DeviceAllocation to = cuda.allocate(MemoryLocation.cuda(0), (long) batches * n * block)) {
            byte[] source = GpuMemory.pattern(batches * n * block, 7);
            GpuMemory.write(from.address(), source);
            CompletableFuture<?>[] done = new CompletableFuture<?>[batches];
            long[] dst = new long[n];
            long[] src = new long[n];
            long[] len = new long[n];
            for (int b = 0; b < batches; b++) { // every batch its own bytes and list, submitted without waiting
                for (int i = 0; i < n; i++) {
                    long offset = ((long) b * n + i) * block;
                    src[i] = from.address() + offset;
                    dst[i] = to.address() + offset;
                    len[i] = block;
                }
                done[b] = copier.copy(dst, src, len, n);
            }
            CompletableFuture.allOf(done).get(60, TimeUnit.SECONDS);
            assertArrayEquals(source, GpuMemory.read(to.address(), batches * n * block));
        }
    }

    @Test
    void shouldCopyEveryThreadsBatchesInItsOrderWhenSeveralThreadsSubmitAtOnce() throws Exception {
        int threads = 4;
        int batches = 96;
        int n = 16;
        int block = 4096;
        int perThread = batches * n * block;
        try (DeviceAllocation first = cuda.allocate(MemoryLocation.cuda(0), (long) threads * perThread);
                DeviceAllocation second = cuda.allocate(MemoryLocation.cuda(0), (long) threads * perThread);
                DeviceAllocation to = cuda.allocate(MemoryLocation.cuda(0), (long) threads * perThread)) {
            byte[] older = GpuMemory.pattern(threads * perThread, 8);
            byte[] newer = GpuMemory.pattern(threads * perThread, 9);
            GpuMemory.write(first.address(), older);
            GpuMemory.write(second.address(), newer);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                CountDownLatch go = new CountDownLatch(1);
                List<Future<CompletableFuture<Void>>> submitted = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    long base = (long) t * perThread;
                    submitted.add(pool.submit(() -> {
                        go.await();
                        List<CompletableFuture<Void>> done = new ArrayList<>();
                        // each thread copies its slice twice, older bytes then newer: only its own order leaves the newer
                        for (DeviceAllocation from : new DeviceAllocation[] {first, second}) {
                            long[] dst = new long[n];
                            long[] src = new long[n];
                            long[] len = new long[n];
                            for (int b = 0; b < batches; b++) {
                                for (int i = 0; i < n; i++) {
                                    long offset = base + ((long) b * n + i) * block;
                                    src[i] = from.address() + offset;
                                    dst[i] = to.address() + offset;
                                    len[i] = block;
                                }
                                done.add(copier.copy(dst, src, len, n));
                            }
                        }
                        return CompletableFuture.allOf(done.toArray(new CompletableFuture<?>[0]));
                    }));
                }
                go.countDown();
                for (Future<CompletableFuture<Void>> f : submitted) {
                    f.get(60, TimeUnit.SECONDS).get(60, TimeUnit.SECONDS);
                }
            } finally {
                pool.shutdownNow();
            }
            assertArrayEquals(newer, GpuMemory.read(to.address(), threads * perThread));
        }
    }

    /**
     * Gather batches go to the copier's launching thread, other batches are enqueued by the caller:
     * round after round, a gather batch fills a staging area and the next batch (device to host)
     * reads it, all in flight at once, so any batch run out of its order leaves another round's bytes.
     */
    @Test
    void shouldKeepTheOrderOfBatchesWhenGatherBatchesAndOtherBatchesInterleave() throws Exception {
        int rounds = 200;
        int n = 16;
        int block = 4096;
        int per = n * block;
        try (DeviceAllocation from = cuda.allocate(MemoryLocation.cuda(0), (long) rounds * per);
                DeviceAllocation staging = cuda.allocate(MemoryLocation.cuda(0), per);
                GpuMemory.Host host = new GpuMemory.Host(rounds * per)) {
            byte[] source = GpuMemory.pattern(rounds * per, 10);
            GpuMemory.write(from.address(), source);
            List<CompletableFuture<Void>> done = new ArrayList<>();
            long[] dst = new long[n];
            long[] src = new long[n];
            long[] len = new long[n];
            for (int r = 0; r < rounds; r++) {
                for (int i = 0; i < n; i++) { // round r's blocks, reversed, into the staging area
                    src[i] = from.address() + (long) r * per + (long) (n - 1 - i) * block;
                    dst[i] = staging.address() + (long) i * block;
                    len[i] = block;
                }
                done.add(copier.copy(dst, src, len, n));
                done.add(copier.copy(new long[] {host.address + (long) r * per}, new long[] {staging.address()}, new long[] {per}, 1));
            }
            CompletableFuture.allOf(done.toArray(new CompletableFuture<?>[0])).get(60, TimeUnit.SECONDS);
            for (int r = 0; r < rounds; r++) {
                for (int i = 0; i < n; i++) {
                    int want = r * per + (n - 1 - i) * block;
                    assertArrayEquals(java.util.Arrays.copyOfRange(source, want, want + block),
                            host.get(r * per + i * block, block), "round " + r + ", block " + i);
                }
            }
        }
    }

    @Test
    void shouldLocateDeviceAndHostMemoryWhenAskedForStar() {
        try (GpuMemory.Host host = new GpuMemory.Host(4096);
                DeviceAllocation dev = cuda.allocate(MemoryLocation.cuda(0), 4096)) {
            assertEquals(MemoryLocation.cuda(0), cuda.locate(dev.address()));
            assertEquals(MemoryLocation.cuda(0), cuda.locate(dev.address() + 4095));
            assertEquals(MemoryLocation.CPU, cuda.locate(host.address));
            assertEquals(MemoryLocation.cuda(0), dev.location());
        }
    }

    @Test
    void shouldRefuseACopyWhenTheCopierIsClosed() {
        DeviceCopier own = cuda.openCopier(0);
        own.close();
        own.close(); // idempotent
        MooncakeException e = assertThrows(MooncakeException.class, () -> own.copy(new long[1], new long[1], new long[1], 1));
        assertEquals(ErrorCode.CLOSED, e.code());
    }

    @Test
    void shouldRefuseADeviceThatDoesNotExist() {
        MooncakeException e = assertThrows(MooncakeException.class, () -> cuda.allocate(MemoryLocation.cuda(cuda.deviceCount()), 4096));
        assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    }

    private static GpuMemory.Context current() {
        return GpuMemory.currentContext();
    }
}
