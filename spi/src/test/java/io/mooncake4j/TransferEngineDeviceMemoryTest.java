package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.testkit.Bytes;
import io.mooncake4j.testkit.FakeGpu;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The engine's device-memory wiring on CPU: locations at registration, the refusal without a GPU
 * library, and same-process copies with a GPU side going through the device copier, one copy per
 * submit, over {@link FakeGpu} (host memory the fake provider calls {@code cuda:0}).
 */
@Timeout(60)
class TransferEngineDeviceMemoryTest {
    private static TransferEngine plainEngine() {
        return TransferEngine.create(TransferEngineTest.config().build());
    }

    private static TransferEngine engineWithFakeGpu() {
        return FakeGpu.installedFor(TransferEngineDeviceMemoryTest::plainEngine);
    }

    @Test
    void shouldRegisterHostMemoryAtCpu0WhenLocationIsDetected() {
        try (TransferEngine engine = plainEngine(); TransferEngine withGpu = engineWithFakeGpu()) {
            long address = NativeMemory.map(8192);
            try {
                assertEquals(MemoryLocation.CPU, engine.registerMemory(address, 4096, "*").location());
                assertEquals(MemoryLocation.CPU, withGpu.registerMemory(address + 4096, 4096, "*").location());
                assertEquals("cpu:0", engine.localDescriptor().buffers().get(0).name());
            } finally {
                engine.unregisterMemory(address);
                withGpu.unregisterMemory(address + 4096);
                NativeMemory.unmap(address, 8192);
            }
        }
    }

    @Test
    void shouldRefuseCudaNamingWhatToAddWhenNoGpuLibraryIsPresent() {
        try (TransferEngine engine = plainEngine()) {
            long address = NativeMemory.map(4096);
            try {
                MooncakeException e = assertThrows(MooncakeException.class, () -> engine.registerMemory(address, 4096, "cuda:0"));
                assertEquals(ErrorCode.REGISTRATION, e.code());
                assertTrue(e.getMessage().contains("memory location cuda:0 cannot be used"), e.getMessage());
                assertTrue(e.getMessage().contains("io.mooncake4j:mooncake4j-gpu-cuda"), e.getMessage());
                assertTrue(e.getMessage().contains("org.jcuda:jcuda:12.6.0"), e.getMessage());
                assertTrue(engine.localDescriptor().buffers().isEmpty());
                MooncakeException a = assertThrows(MooncakeException.class, () -> engine.allocate(4096, MemoryLocation.cuda(0)));
                assertEquals(ErrorCode.REGISTRATION, a.code());
                assertTrue(a.getMessage().contains("io.mooncake4j:mooncake4j-gpu-cuda"), a.getMessage());
            } finally {
                NativeMemory.unmap(address, 4096);
            }
        }
    }

    @Test
    void shouldDetectDeviceMemoryAndRefuseAWrongLocation() {
        try (TransferEngine engine = engineWithFakeGpu(); DeviceAllocation gpu = FakeGpu.allocateDevice(8192)) {
            long host = NativeMemory.map(4096);
            try {
                assertEquals(MemoryLocation.cuda(0), engine.registerMemory(gpu.address(), 4096, "*").location());
                assertEquals("cuda:0", engine.localDescriptor().buffers().get(0).name());
                MooncakeException e = assertThrows(MooncakeException.class, () -> engine.registerMemory(host, 4096, "cuda:0"));
                assertEquals(ErrorCode.REGISTRATION, e.code());
                assertTrue(e.getMessage().contains("is in cpu:0, not cuda:0"), e.getMessage());
                long forgotten = FakeGpu.FORGOTTEN_BYTES.get();
                engine.unregisterMemory(gpu.address());
                assertEquals(forgotten + 4096, FakeGpu.FORGOTTEN_BYTES.get());
            } finally {
                NativeMemory.unmap(host, 4096);
            }
        }
    }

    @Test
    void shouldCopyGpuRequestsOfOneSubmitInOneDeviceCopyAndCompleteOffTheCopierThread() throws Exception {
        int n = 128;
        int block = 64 << 10;
        try (TransferEngine engine = engineWithFakeGpu();
                HostMemory host = engine.allocate((long) n * block);
                DeviceMemory gpu = engine.allocate((long) n * block, MemoryLocation.cuda(0))) {
            assertEquals(MemoryLocation.cuda(0), gpu.location());
            byte[] data = new byte[n * block];
            new Random(3).nextBytes(data);
            host.buffer().put(data);
            Segment self = engine.openSegment(engine.localSegmentName());
            TransferBatch write = engine.newBatch(n + 1);
            for (int i = 0; i < n; i++) {
                write.write(self, host.address() + (long) i * block, gpu.address() + (long) (n - 1 - i) * block, block);
            }
            int before = FakeGpu.COPY_CALLS.get();
            String stage = write.submit().completion().thenApply(b -> Thread.currentThread().getName()).get(30, TimeUnit.SECONDS);
            assertEquals(before + 1, FakeGpu.COPY_CALLS.get(), "one device copy per submit");
            assertNotEquals(FakeGpu.COPIER_THREAD, stage);
            assertTrue(write.isAllCompleted());

            // back into host memory, with a host-only request in the same batch taking the memmove
            HostMemory back = engine.allocate((long) n * block);
            try (back) {
                TransferBatch read = engine.newBatch(n + 1);
                for (int i = 0; i < n; i++) {
                    read.read(self, back.address() + (long) i * block, gpu.address() + (long) i * block, block);
                }
                read.read(self, back.address(), host.address(), 16); // host to host: copied at once
                assertEquals(TransferStatus.COMPLETED, read.submit().status(n));
                assertTrue(read.join().isAllCompleted());
                assertEquals(before + 2, FakeGpu.COPY_CALLS.get());
                byte[] got = new byte[n * block];
                back.buffer().get(got);
                for (int i = 0; i < n; i++) {
                    int from = (n - 1 - i) * block;
                    byte[] expected = java.util.Arrays.copyOfRange(data, from, from + block);
                    if (i == n - 1) {
                        System.arraycopy(data, 0, expected, 0, 16);
                    }
                    assertArrayEquals(expected, java.util.Arrays.copyOfRange(got, i * block, (i + 1) * block), "block " + i);
                }
            }
        }
    }

    @Test
    void shouldEndOnlyTheLocalRequestsOutsideRegisteredMemoryInvalidWhenARoundMixesGpuAndHostCopies() throws Exception {
        try (TransferEngine engine = engineWithFakeGpu();
                HostMemory host = engine.allocate(3 * 4096);
                DeviceMemory gpu = engine.allocate(2 * 4096, MemoryLocation.cuda(0))) {
            long unregistered = NativeMemory.map(4096);
            try {
                byte[] data = new byte[4096];
                new Random(5).nextBytes(data);
                host.buffer().put(0, data);
                byte[] onDevice = new byte[4096];
                new Random(6).nextBytes(onDevice);
                NativeMemory.wrap(gpu.address(), 4096).put(onDevice); // FakeGpu's device memory is host memory
                Segment self = engine.openSegment(engine.localSegmentName());
                TransferBatch b = engine.newBatch(5)
                        .write(self, host.address(), gpu.address() + 4096, 4096) // host to device
                        .write(self, unregistered, gpu.address(), 4096) // local side not registered
                        .write(self, host.address(), unregistered, 4096) // target not registered
                        .write(self, host.address(), host.address() + 4096, 4096) // host to host
                        .read(self, host.address() + 2 * 4096, gpu.address(), 4096); // device to host
                assertTrue(b.submit().await(java.time.Duration.ofSeconds(10)));
                assertEquals(TransferStatus.COMPLETED, b.status(0));
                assertEquals(TransferStatus.INVALID, b.status(1));
                assertTrue(b.failureReason(1).contains("is not inside one registered region: register it with registerMemory first"),
                        b.failureReason(1));
                assertEquals(TransferStatus.INVALID, b.status(2));
                assertTrue(b.failureReason(2).contains("is not inside one registered region of the local segment"), b.failureReason(2));
                assertEquals(TransferStatus.COMPLETED, b.status(3));
                assertEquals(TransferStatus.COMPLETED, b.status(4));
                assertArrayEquals(data, Bytes.at(gpu.address() + 4096, 4096), "host to device");
                assertArrayEquals(data, Bytes.at(host.address() + 4096, 4096), "host to host");
                assertArrayEquals(onDevice, Bytes.at(host.address() + 2 * 4096, 4096), "device to host");
                long leaked = DeviceMemory.leakedBytes();
                gpu.close(); // unregisters once nothing of the round pins it, then frees
                assertEquals(leaked, DeviceMemory.leakedBytes());
            } finally {
                NativeMemory.unmap(unregistered, 4096);
            }
        }
    }

    @Test
    void shouldCopyEachGpusRequestsInOneCopyAndReleaseTheRegionsWhenARoundSpansTwoGpus() throws Exception {
        int n = 64;
        int block = 4096;
        try (TransferEngine engine = engineWithFakeGpu();
                HostMemory host = engine.allocate((long) n * block);
                DeviceMemory gpu0 = engine.allocate((long) n * block, MemoryLocation.cuda(0));
                DeviceMemory gpu1 = engine.allocate((long) n * block, MemoryLocation.cuda(1))) {
            assertEquals(MemoryLocation.cuda(1), gpu1.location());
            byte[] data = new byte[n * block];
            new Random(7).nextBytes(data);
            host.buffer().put(0, data);
            Segment self = engine.openSegment(engine.localSegmentName());
            TransferBatch b = engine.newBatch(n);
            for (int i = 0; i < n; i++) { // interleaved: even blocks to cuda:0, odd ones to cuda:1
                DeviceMemory to = i % 2 == 0 ? gpu0 : gpu1;
                b.write(self, host.address() + (long) i * block, to.address() + (long) i * block, block);
            }
            int before = FakeGpu.COPY_CALLS.get();
            assertTrue(b.submit().await(java.time.Duration.ofSeconds(10)));
            assertTrue(b.isAllCompleted());
            assertEquals(before + 2, FakeGpu.COPY_CALLS.get(), "one copy per device");
            for (int i = 0; i < n; i++) {
                DeviceMemory to = i % 2 == 0 ? gpu0 : gpu1;
                assertArrayEquals(java.util.Arrays.copyOfRange(data, i * block, (i + 1) * block),
                        Bytes.at(to.address() + (long) i * block, block), "block " + i);
            }
            long leaked = DeviceMemory.leakedBytes();
            gpu0.close(); // both copies reported: nothing of the round pins either region
            gpu1.close();
            assertEquals(leaked, DeviceMemory.leakedBytes());
        }
    }

    @Test
    void shouldReleaseEveryRoundsPinsWhenManyGpuRoundsAreInFlightAndSomeAreCancelled() throws Exception {
        int rounds = 300;
        int n = 16;
        int block = 256;
        try (TransferEngine engine = engineWithFakeGpu();
                TransferEngine peer = plainEngine();
                HostMemory host = engine.allocate((long) n * block);
                HostMemory remote = peer.allocate(block)) {
            DeviceMemory gpu = engine.allocate((long) n * block, MemoryLocation.cuda(0));
            io.mooncake4j.testkit.InMemoryTransportProvider.STALLED.add(peer.localSegmentName());
            try {
                byte[] data = new byte[n * block];
                new Random(11).nextBytes(data);
                host.buffer().put(0, data);
                Segment self = engine.openSegment(engine.localSegmentName());
                Segment stalled = engine.openSegment(peer.localSegmentName());
                TransferBatch[] ring = new TransferBatch[8];
                int completed = 0;
                int canceled = 0;
                for (int r = 0; r < rounds + ring.length; r++) {
                    TransferBatch old = ring[r % ring.length];
                    if (old != null) {
                        assertTrue(old.await(java.time.Duration.ofSeconds(10)));
                        for (int i = 0; i < n; i++) { // a copy may finish before its round is closed
                            TransferStatus st = old.status(i);
                            assertTrue(st == TransferStatus.COMPLETED || st == TransferStatus.CANCELED, st.toString());
                            completed += st == TransferStatus.COMPLETED ? 1 : 0;
                        }
                        if (old.size() > n) { // the stalled request of a closed round
                            assertEquals(TransferStatus.CANCELED, old.status(n));
                            canceled++;
                        }
                    }
                    if (r >= rounds) {
                        continue;
                    }
                    boolean cancel = r % 5 == 0;
                    TransferBatch b = engine.newBatch(n + 1);
                    for (int i = 0; i < n; i++) {
                        b.write(self, host.address() + (long) i * block, gpu.address() + (long) i * block, block);
                    }
                    if (cancel) { // a request that never ends makes the round cancellable
                        b.write(stalled, host.address(), remote.address(), block);
                    }
                    ring[r % ring.length] = b.submit();
                    if (cancel) {
                        b.close(); // ends the round CANCELED, its copy possibly still on the "device"
                    }
                }
                assertTrue(completed > 0, "completed " + completed);
                assertEquals(rounds / 5, canceled, "closed rounds");
                assertArrayEquals(data, Bytes.at(gpu.address(), n * block));
                long leaked = DeviceMemory.leakedBytes();
                gpu.close(); // every round's pins were released: unregisters at once and frees
                assertEquals(leaked, DeviceMemory.leakedBytes());
            } finally {
                io.mooncake4j.testkit.InMemoryTransportProvider.STALLED.clear();
                gpu.close();
            }
        }
    }

    @Test
    void shouldEndStillRunningGpuCopiesWithTheRoundAndKeepTheirPinsUntilTheCopierReports() throws Exception {
        try (TransferEngine engine = engineWithFakeGpu();
                TransferEngine peer = plainEngine();
                HostMemory host = engine.allocate(4096);
                HostMemory remote = peer.allocate(4096)) {
            DeviceMemory gpu = engine.allocate(4096, MemoryLocation.cuda(0));
            io.mooncake4j.testkit.InMemoryTransportProvider.STALLED.add(peer.localSegmentName());
            java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
            FakeGpu.gate = gate;
            try {
                TransferBatch b = engine.newBatch(2)
                        .write(engine.openSegment(engine.localSegmentName()), host.address(), gpu.address(), 4096)
                        .write(engine.openSegment(peer.localSegmentName()), host.address(), remote.address(), 4096)
                        .submit();
                b.close();
                assertTrue(b.await(java.time.Duration.ofSeconds(5)));
                assertEquals(TransferStatus.CANCELED, b.status(0), "the GPU copy ends with its round");
                assertEquals(TransferStatus.CANCELED, b.status(1));
                gate.countDown();
                long leaked = DeviceMemory.leakedBytes();
                gpu.close(); // waits for the copier to report, then frees
                assertEquals(leaked, DeviceMemory.leakedBytes());
            } finally {
                FakeGpu.gate = null;
                gate.countDown();
                io.mooncake4j.testkit.InMemoryTransportProvider.STALLED.clear();
                gpu.close();
            }
        }
    }

    @Test
    void shouldEndARoundOfDeviceCopiesOnlyAtItsDeadlineAndKeepItsPinsUntilTheCopierReports() throws Exception {
        java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
        try (TransferEngine engine = FakeGpu.installedFor(() -> TransferEngine.create(
                        TransferEngineTest.config().transferTimeout(java.time.Duration.ofMillis(300)).build()));
                HostMemory host = engine.allocate(8192)) {
            DeviceMemory gpu = engine.allocate(8192, MemoryLocation.cuda(0));
            Segment self = engine.openSegment(engine.localSegmentName());
            FakeGpu.gate = gate; // the device never finishes until the gate opens
            try {
                TransferBatch b = engine.newBatch(2)
                        .write(self, host.address(), gpu.address(), 4096)
                        .read(self, host.address() + 4096, gpu.address() + 4096, 4096)
                        .submit();
                assertTrue(b.await(java.time.Duration.ofSeconds(5)), "the round ends at its deadline");
                for (int i = 0; i < 2; i++) {
                    assertEquals(TransferStatus.TIMEOUT, b.status(i));
                    assertTrue(b.failureReason(i).contains("MC_TRANSFER_TIMEOUT"), b.failureReason(i));
                }
                FakeGpu.gate = null;
                gate.countDown();
                long leaked = DeviceMemory.leakedBytes();
                gpu.close(); // the copier reports now; then nothing pins the memory
                assertEquals(leaked, DeviceMemory.leakedBytes());
            } finally {
                FakeGpu.gate = null;
                gate.countDown();
                gpu.close();
            }
        }
    }

    @Test
    void shouldCancelARoundOfDeviceCopiesOnlyWhenTheBatchOrTheEngineCloses() throws Exception {
        java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
        TransferEngine engine = engineWithFakeGpu();
        HostMemory host = engine.allocate(4096);
        DeviceMemory gpu = engine.allocate(4096, MemoryLocation.cuda(0));
        FakeGpu.gate = gate;
        Thread closing = null;
        try {
            Segment self = engine.openSegment(engine.localSegmentName());
            TransferBatch closed = engine.newBatch(1).write(self, host.address(), gpu.address(), 4096).submit();
            closed.close();
            assertTrue(closed.isDone(), "close() ends the round at once");
            assertEquals(TransferStatus.CANCELED, closed.status(0));

            TransferBatch inFlight = engine.newBatch(1).write(self, host.address(), gpu.address(), 4096).submit();
            closing = new Thread(engine::close, "closing-engine"); // closing the copier waits for the gate
            closing.start();
            assertTrue(inFlight.await(java.time.Duration.ofSeconds(5)), "the engine's close ends the round");
            assertEquals(TransferStatus.CANCELED, inFlight.status(0));
        } finally {
            FakeGpu.gate = null;
            gate.countDown();
            if (closing != null) {
                closing.join(10_000);
            }
            engine.close();
            long leaked = DeviceMemory.leakedBytes();
            gpu.close();
            host.close();
            assertEquals(leaked, DeviceMemory.leakedBytes());
        }
    }
}
