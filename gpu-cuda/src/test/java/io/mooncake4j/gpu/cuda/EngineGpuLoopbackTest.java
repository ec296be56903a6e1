package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuCtxCreate;
import static jcuda.driver.JCudaDriver.cuCtxDestroy;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.spi.DeviceAllocation;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Mooncake's GPU loopback cases through the engine API: device memory allocated and registered by
 * the engine, requests to the engine's own segment (as Mooncake's loopback test opens its own
 * segment name), bytes asserted. Skipped, saying why, without a GPU.
 */
@Tag("gpu")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class EngineGpuLoopbackTest {
    private static final int MIB = 1 << 20;
    private static TransferEngine engine;
    private static Segment self;

    @BeforeAll
    static void open() {
        if (new CudaDeviceMemoryProvider().isAvailable()) {
            engine = GpuEngines.create();
            self = engine.openSegment(engine.localSegmentName());
        }
    }

    @BeforeEach
    void requireGpu() {
        GpuMemory.requireGpu();
    }

    @AfterAll
    static void close() {
        if (engine != null) {
            engine.close();
        }
    }

    @Test
    void shouldRegisterDeviceMemoryAtCuda0WhenAllocatedOrDetected() {
        CudaDeviceMemoryProvider cuda = new CudaDeviceMemoryProvider();
        try (DeviceMemory gpu = engine.allocate(MIB, MemoryLocation.cuda(0));
                DeviceAllocation raw = cuda.allocate(MemoryLocation.cuda(0), MIB)) {
            assertEquals(MemoryLocation.cuda(0), gpu.location());
            assertEquals(MemoryLocation.cuda(0), engine.registerMemory(raw.address(), MIB, "*").location());
            assertTrue(engine.localDescriptor().buffers().stream()
                    .filter(b -> b.address() == gpu.address() || b.address() == raw.address())
                    .allMatch(b -> b.name().equals("cuda:0")), engine.localDescriptor().buffers().toString());
            engine.unregisterMemory(raw.address());
        }
    }

    @Test
    void shouldLoopback4MiBByteExactBetweenHostAndDeviceInBothDirections() {
        byte[] data = GpuMemory.pattern(4 * MIB, 5);
        try (HostMemory host = engine.allocate(4 * MIB);
                HostMemory back = engine.allocate(4 * MIB);
                DeviceMemory gpu = engine.allocate(4 * MIB, MemoryLocation.cuda(0));
                DeviceMemory gpu2 = engine.allocate(4 * MIB, MemoryLocation.cuda(0))) {
            host.buffer().put(data);
            engine.write(self, host.address(), gpu.address(), 4 * MIB); // host to device
            assertArrayEquals(data, GpuMemory.read(gpu.address(), 4 * MIB));
            engine.read(self, back.address(), gpu.address(), 4 * MIB); // device to host
            assertArrayEquals(data, bytes(back, 4 * MIB));
            engine.read(self, gpu2.address(), host.address(), 4 * MIB); // host to device, as a READ
            assertArrayEquals(data, GpuMemory.read(gpu2.address(), 4 * MIB));
            back.buffer().put(new byte[4 * MIB]);
            engine.write(self, gpu2.address(), back.address(), 4 * MIB); // device to host, as a WRITE
            assertArrayEquals(data, bytes(back, 4 * MIB));
        }
    }

    @Test
    void shouldCompleteEveryRequestExactlyWhenABatchHas128DeviceBlocks() throws Exception {
        int n = 128;
        int block = 64 << 10;
        byte[] source = GpuMemory.pattern(n * block, 6);
        try (DeviceMemory from = engine.allocate((long) n * block, MemoryLocation.cuda(0));
                DeviceMemory to = engine.allocate((long) n * block, MemoryLocation.cuda(0))) {
            GpuMemory.write(from.address(), source);
            TransferBatch batch = engine.newBatch(n);
            for (int i = 0; i < n; i++) { // block i goes to slot (i * 37) % n: out of order
                batch.write(self, from.address() + (long) i * block, to.address() + (long) ((i * 37) % n) * block, block);
            }
            assertTrue(batch.submit().await(java.time.Duration.ofSeconds(60)));
            for (int i = 0; i < n; i++) {
                assertEquals(TransferStatus.COMPLETED, batch.status(i), "request " + i);
            }
            byte[] got = GpuMemory.read(to.address(), n * block);
            for (int i = 0; i < n; i++) {
                int at = ((i * 37) % n) * block;
                assertArrayEquals(Arrays.copyOfRange(source, i * block, (i + 1) * block),
                        Arrays.copyOfRange(got, at, at + block), "block " + i);
            }
        }
    }

    @Test
    void shouldLeaveTheCallersContextAsItWasWhenTransferring() throws Exception {
        AtomicReference<String> seen = new AtomicReference<>();
        Thread t = new Thread(() -> {
            try (DeviceMemory gpu = engine.allocate(MIB, MemoryLocation.cuda(0));
                    HostMemory host = engine.allocate(MIB)) {
                long none = current().value();
                engine.write(self, host.address(), gpu.address(), MIB);
                String withNone = none + " -> " + current().value();
                CUdevice dev = new CUdevice();
                CudaDriver.check(cuDeviceGet(dev, 0), "cuDeviceGet");
                GpuMemory.Context own = new GpuMemory.Context();
                CudaDriver.check(cuCtxCreate(own, 0, dev), "cuCtxCreate");
                try {
                    engine.read(self, host.address(), gpu.address(), MIB);
                    seen.set(withNone + ", own kept=" + (current().value() == own.value()));
                } finally {
                    cuCtxSetCurrent(new CUcontext());
                    cuCtxDestroy(own);
                }
            } catch (RuntimeException e) {
                seen.set(e.toString());
            }
        });
        t.start();
        t.join(60_000);
        assertEquals("0 -> 0, own kept=true", seen.get());
    }

    private static byte[] bytes(HostMemory m, int length) {
        byte[] b = new byte[length];
        m.buffer(0, length).get(b);
        return b;
    }

    private static GpuMemory.Context current() {
        return GpuMemory.currentContext();
    }
}
