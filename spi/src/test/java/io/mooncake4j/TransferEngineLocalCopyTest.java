package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.testkit.Bytes;
import io.mooncake4j.testkit.FakeGpu;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** {@link TransferEngine#copyIn} and {@link TransferEngine#copyOut} on host and (fake) device memory. */
class TransferEngineLocalCopyTest {
    @AfterEach
    void openGate() {
        FakeGpu.openGate();
    }

    private static TransferEngine engine(Duration timeout) {
        return FakeGpu.installedFor(() -> TransferEngine.create(TransferEngineTest.config().transferTimeout(timeout).build()));
    }

    @Test
    void shouldCopyHeapAndDirectBuffersIntoAndOutOfHostMemoryAtAnOffset() {
        try (TransferEngine engine = engine(Duration.ofSeconds(10)); HostMemory host = engine.allocate(1 << 16)) {
            int copiesBefore = FakeGpu.COPY_CALLS.get();
            byte[] data = Bytes.random(5000, 1);
            ByteBuffer src = ByteBuffer.wrap(data, 100, 4900);
            engine.copyIn(host.address() + 3, src);
            assertEquals(5000, src.position(), "the source's position advances");
            assertArrayEquals(java.util.Arrays.copyOfRange(data, 100, 5000), Bytes.at(host.address() + 3, 4900));

            ByteBuffer dst = ByteBuffer.allocateDirect(4900);
            engine.copyOut(host.address() + 3, dst);
            assertEquals(4900, dst.position());
            byte[] back = new byte[4900];
            dst.flip().get(back);
            assertArrayEquals(java.util.Arrays.copyOfRange(data, 100, 5000), back);
            assertEquals(copiesBefore, FakeGpu.COPY_CALLS.get(), "host memory needs no device copy");
        }
    }

    @Test
    void shouldCopyIntoAndOutOfDeviceMemoryLargerThanOneStagingPiece() {
        int n = 2 * LocalCopies.CHUNK_BYTES + 12345; // three pieces, the last one partial
        try (TransferEngine engine = engine(Duration.ofSeconds(10));
                DeviceMemory gpu = engine.allocate(n + 64, MemoryLocation.cuda(0))) {
            byte[] data = Bytes.random(n, 2);
            int copiesBefore = FakeGpu.COPY_CALLS.get();
            engine.copyIn(gpu.address() + 64, ByteBuffer.wrap(data));
            assertEquals(copiesBefore + 3, FakeGpu.COPY_CALLS.get(), "one device copy per 4 MiB piece");
            assertArrayEquals(data, Bytes.at(gpu.address() + 64, n), "the bytes are in device memory");

            byte[] back = new byte[n];
            engine.copyOut(gpu.address() + 64, ByteBuffer.wrap(back));
            assertArrayEquals(data, back);
            assertTrue(engine.localDescriptor().buffers().stream().noneMatch(b -> b.length() == LocalCopies.CHUNK_BYTES),
                    "the staging region is never published: " + engine.localDescriptor().buffers());
        }
    }

    @Test
    void shouldCopyIntoLocalOnlyDeviceMemory() {
        try (TransferEngine engine = engine(Duration.ofSeconds(10))) {
            io.mooncake4j.spi.DeviceAllocation a = FakeGpu.allocateDevice(8192);
            try {
                engine.registerMemory(a.address(), 8192, MemoryLocation.cuda(0), RegionAccess.LOCAL_ONLY);
                byte[] data = Bytes.random(8192, 3);
                engine.copyIn(a.address(), ByteBuffer.wrap(data));
                byte[] back = new byte[8192];
                engine.copyOut(a.address(), ByteBuffer.wrap(back));
                assertArrayEquals(data, back);
                engine.unregisterMemory(a.address());
            } finally {
                a.close();
            }
        }
    }

    @Test
    void shouldRefuseRangesOutsideRegisteredMemoryAndCopyNothing() {
        try (TransferEngine engine = engine(Duration.ofSeconds(10)); HostMemory host = engine.allocate(4096)) {
            ByteBuffer src = ByteBuffer.wrap(new byte[100]);
            MooncakeException e = assertThrows(MooncakeException.class,
                    () -> engine.copyIn(host.address() + host.length() - 50, src));
            assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
            assertTrue(e.getMessage().contains("is not inside one region registered with this engine"), e.getMessage());
            assertEquals(0, src.position(), "nothing consumed");
            long unregistered = NativeMemory.map(4096);
            try {
                assertEquals(ErrorCode.INVALID_ARGUMENT, assertThrows(MooncakeException.class,
                        () -> engine.copyOut(unregistered, ByteBuffer.allocate(8))).code());
            } finally {
                NativeMemory.unmap(unregistered, 4096);
            }
            engine.copyIn(host.address(), ByteBuffer.allocate(0)); // nothing to copy: no check needed
        }
    }

    @Test
    void shouldFailAPieceThatDoesNotCompleteInTimeAndNeverReuseItsStagingRegion() throws Exception {
        long leaked = HostMemory.leakedBytes();
        try (TransferEngine engine = engine(Duration.ofMillis(300));
                DeviceMemory gpu = engine.allocate(8192, MemoryLocation.cuda(0))) {
            byte[] x = Bytes.random(4096, 4);
            byte[] y = Bytes.random(4096, 5);
            CountDownLatch gate = new CountDownLatch(1);
            FakeGpu.gate = gate; // device copies wait
            MooncakeException e = assertThrows(MooncakeException.class,
                    () -> engine.copyIn(gpu.address(), ByteBuffer.wrap(x)));
            assertEquals(ErrorCode.TRANSFER_FAILED, e.code());
            assertTrue(e.getMessage().contains("TIMEOUT"), e.getMessage());
            // the next copy's bytes go to a new staging region: were the first one reused, the late
            // copy above would carry them to its own destination
            assertThrows(MooncakeException.class, () -> engine.copyIn(gpu.address() + 4096, ByteBuffer.wrap(y)));

            FakeGpu.gate = null;
            gate.countDown(); // both late copies run now, then the read below
            byte[] back = new byte[8192];
            engine.copyOut(gpu.address(), ByteBuffer.wrap(back));
            assertArrayEquals(x, java.util.Arrays.copyOfRange(back, 0, 4096), "the late copy carried its own bytes");
            assertArrayEquals(y, java.util.Arrays.copyOfRange(back, 4096, 8192));
        }
        assertEquals(leaked, HostMemory.leakedBytes(), "the retired staging regions were freed");
    }

    @Test
    void shouldRefuseCopiesOnceTheEngineClosed() {
        TransferEngine engine = engine(Duration.ofSeconds(10));
        DeviceMemory gpu = engine.allocate(4096, MemoryLocation.cuda(0));
        engine.copyIn(gpu.address(), ByteBuffer.allocate(4096)); // the staging region exists
        long leaked = HostMemory.leakedBytes();
        engine.close();
        assertEquals(leaked, HostMemory.leakedBytes(), "the staging region was freed at close");
        assertEquals(ErrorCode.CLOSED, assertThrows(MooncakeException.class,
                () -> engine.copyIn(gpu.address(), ByteBuffer.allocate(16))).code());
        gpu.close();
    }
}
