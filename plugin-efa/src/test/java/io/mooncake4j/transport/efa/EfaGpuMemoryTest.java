package io.mooncake4j.transport.efa;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.nativeio.fabric.FabricFaults;
import io.mooncake4j.nativeio.fabric.LibFabric;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.testkit.FakeGpu;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * GPU memory ({@code cuda:0} from the test kit's {@link FakeGpu}, host memory underneath) on the efa
 * transport over {@code tcp;ofi_rxm}, whose libfabric has no {@code FI_HMEM}: refused clearly, with
 * host memory unaffected; and, through the fault seam that makes the NICs claim {@code FI_HMEM}, the
 * registration path itself ({@code FI_HMEM_CUDA}, the device, the device's context entered and left)
 * and same-process copies going through the engine's device copier, not libfabric.
 */
@Tag("integration")
@Timeout(120)
class EfaGpuMemoryTest {
    private static final int LENGTH = 1 << 20;

    @AfterEach
    void clearFaults() {
        FabricFaults.clear();
    }

    private static TransferEngine gpuEngine() {
        return FakeGpu.installedFor(() -> EfaEngineTest.engine("tcp;ofi_rxm"));
    }

    @Test
    void shouldRefuseGpuMemoryNamingWhatToInstallWhenTheProviderHasNoHmem() {
        try (TransferEngine engine = gpuEngine();
                TransferEngine peer = EfaEngineTest.engine("tcp;ofi_rxm");
                DeviceAllocation gpu = FakeGpu.allocateDevice(LENGTH);
                HostMemory host = engine.allocate(LENGTH);
                HostMemory remote = peer.allocate(LENGTH)) {
            MooncakeException e = assertThrows(MooncakeException.class,
                    () -> engine.registerMemory(gpu.address(), LENGTH, MemoryLocation.cuda(0)));
            assertEquals(ErrorCode.REGISTRATION, e.code(), e.getMessage());
            assertTrue(e.getMessage().contains("no FI_HMEM (CUDA) support")
                    && e.getMessage().contains(LibFabric.PATH_SETTING), e.getMessage());
            assertNull(engine.localDescriptor().bufferContaining(gpu.address(), 1), "nothing stays registered");

            Segment seg = engine.openSegment(peer.localSegmentName());
            fillRandom(host.address(), LENGTH, 5);
            engine.write(seg, host.address(), remote.address(), LENGTH);
            assertSameBytes(host.address(), remote.address(), LENGTH, "host memory after the refusal");
        }
    }

    @Test
    void shouldRegisterGpuMemoryAsCudaInItsDeviceContextAndCopyLoopbackOnTheDeviceCopier() {
        FabricFaults.pretendHmem();
        try (TransferEngine engine = gpuEngine();
                DeviceAllocation gpu = FakeGpu.allocateDevice(LENGTH);
                HostMemory host = engine.allocate(2L * LENGTH)) {
            int scopes = FakeGpu.CONTEXT_SCOPES.get();
            engine.registerMemory(gpu.address(), LENGTH, MemoryLocation.cuda(0));
            assertEquals(LibFabric.FI_HMEM_CUDA, FabricFaults.lastRegistrationIface(), "iface");
            assertEquals(0, FabricFaults.lastRegistrationDevice(), "device");
            assertEquals(scopes + 1, FakeGpu.CONTEXT_SCOPES.get(), "registered in the device's context");
            assertEquals(-1, FakeGpu.currentDevice(), "the caller's (no) context is current again");
            BufferDescriptor published = engine.localDescriptor().bufferContaining(gpu.address(), 1);
            assertNotNull(published, "published");
            assertEquals("cuda:0", published.name());
            assertTrue(published.rkeys()[0] != 0, "a key on the NIC");

            Segment self = engine.openSegment(engine.localSegmentName());
            int copies = FakeGpu.COPY_CALLS.get();
            fillRandom(host.address(), LENGTH, 9);
            engine.write(self, host.address(), gpu.address(), LENGTH);
            engine.read(self, host.address() + LENGTH, gpu.address(), LENGTH);
            assertSameBytes(host.address(), host.address() + LENGTH, LENGTH, "loopback through the GPU");
            assertTrue(FakeGpu.COPY_CALLS.get() >= copies + 2, "copied by the engine's device copier");
            engine.unregisterMemory(gpu.address());
        }
    }

    /**
     * A libfabric that lists FI_HMEM but was built without CUDA (Ubuntu's 1.17 shm, seen on the H200
     * machine) answers a CUDA registration with FI_ENOSYS: refused saying which libfabric to install.
     */
    @Test
    void shouldSayWhichLibfabricToInstallWhenACudaRegistrationIsNotImplemented() {
        FabricFaults.pretendHmem();
        FabricFaults.failRegistration(1, LibFabric.FI_ENOSYS);
        try (TransferEngine engine = gpuEngine();
                DeviceAllocation gpu = FakeGpu.allocateDevice(LENGTH)) {
            MooncakeException e = assertThrows(MooncakeException.class,
                    () -> engine.registerMemory(gpu.address(), LENGTH, MemoryLocation.cuda(0)));
            assertEquals(ErrorCode.REGISTRATION, e.code(), e.getMessage());
            assertTrue(e.getMessage().contains("built without CUDA")
                    && e.getMessage().contains(LibFabric.PATH_SETTING + "=/opt/amazon/efa/lib/libfabric.so.1"), e.getMessage());
            assertNull(engine.localDescriptor().bufferContaining(gpu.address(), 1), "nothing stays registered");
        }
    }
}
