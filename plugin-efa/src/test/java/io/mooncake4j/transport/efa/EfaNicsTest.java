package io.mooncake4j.transport.efa;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.nativeio.fabric.FabricFaults;
import io.mooncake4j.nativeio.fabric.FabricInfo;
import io.mooncake4j.nativeio.fabric.LibFabric;
import io.mooncake4j.spi.RegionRegistration;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Several NICs (two domains of {@code tcp;ofi_rxm}, e.g. lo and eth0) and the mr_mode branches that
 * no software provider asks for, reached through the JNI fault seam.
 */
@Tag("integration")
@Timeout(120)
class EfaNicsTest {
    private static final String TCP = "tcp;ofi_rxm";

    @AfterEach
    void clearFaults() {
        FabricFaults.clear();
    }

    /** Two domains of the tcp provider, or the test is skipped (a host with one interface). */
    private static String twoDomains() {
        try (FabricInfo.Query q = FabricInfo.Query.run(TCP, null, EfaNic.MR_MODE_HINTS)) {
            var names = q.infos().stream().map(FabricInfo::domain).distinct().toList();
            assumeTrue(names.size() >= 2, "this host offers one tcp domain: " + names);
            return names.get(0) + "," + names.get(1);
        }
    }

    /** Writes 16 scattered 64 KiB blocks from a to b, then checks bytes and returns a's counters. */
    private static Map<String, Long> writeAndCheck(EfaPair pair) throws Exception {
        int block = 64 << 10;
        long len = 32L * block;
        long src = NativeMemory.map(len);
        long dst = NativeMemory.map(len);
        MemoryRegion srcRegion = new MemoryRegion(src, len, MemoryLocation.CPU);
        MemoryRegion dstRegion = new MemoryRegion(dst, len, MemoryLocation.CPU);
        RegionRegistration srcReg = pair.a.registerRegion(srcRegion);
        RegionRegistration dstReg = pair.b.registerRegion(dstRegion);
        try {
            SegmentDescriptor peer = EfaPair.describe("127.0.0.1:2", pair.b, dstRegion, dstReg);
            fillRandom(src, len, 77);
            long[] local = new long[16];
            long[] remote = new long[16];
            long[] length = new long[16];
            for (int i = 0; i < 16; i++) {
                local[i] = src + 2L * i * block;
                remote[i] = dst + 2L * i * block;
                length[i] = block;
            }
            EfaPair.Work w = new EfaPair.Work(Opcode.WRITE, local, remote, length, srcReg,
                    peer.bufferContaining(dst, 1));
            pair.a.submit(peer, w);
            assertTrue(w.await(), "all 16 writes reported");
            for (int i = 0; i < 16; i++) {
                assertEquals(TransferStatus.COMPLETED, w.status[i], w.reason[i]);
                assertSameBytes(local[i], remote[i], block, "block " + i);
            }
            return pair.a.counters();
        } finally {
            pair.a.unregisterRegion(srcRegion, srcReg);
            pair.b.unregisterRegion(dstRegion, dstReg);
            NativeMemory.unmap(src, len);
            NativeMemory.unmap(dst, len);
        }
    }

    @Test
    void shouldCarryTrafficOnBothNicsWhenTwoDomainsAreConfigured() throws Exception {
        String devices = twoDomains();
        try (EfaPair pair = new EfaPair(EfaSettings.PROVIDER, TCP, EngineConfig.DEVICE, devices)) {
            Map<String, Long> counters = writeAndCheck(pair);
            for (String nic : devices.split(",")) {
                assertTrue(counters.get(nic + ".operations") > 0, nic + " carried nothing: " + counters);
            }
            assertEquals(16L * (64 << 10),
                    counters.values().stream().filter(v -> v > 1000).mapToLong(Long::longValue).sum(),
                    "bytes over both NICs: " + counters);
        }
    }

    @Test
    void shouldRollBackTheFirstNicWhenTheSecondRefusesARegion() {
        String devices = twoDomains();
        long len = 1 << 16;
        long m = NativeMemory.map(len);
        MemoryRegion region = new MemoryRegion(m, len, MemoryLocation.CPU);
        try (EfaPair pair = new EfaPair(EfaSettings.PROVIDER, TCP, EngineConfig.DEVICE, devices)) {
            FabricFaults.failRegistration(2, 12);
            MooncakeException e = assertThrows(MooncakeException.class, () -> pair.a.registerRegion(region));
            assertEquals(ErrorCode.REGISTRATION, e.code());
            assertTrue(e.getMessage().contains(devices.split(",")[1]) && e.getMessage().contains("nothing was registered"),
                    e.getMessage());
            // the first NIC's registration was closed: registering the same range again works on both
            RegionRegistration again = pair.a.registerRegion(region);
            pair.a.unregisterRegion(region, again);
        } finally {
            NativeMemory.unmap(m, len);
        }
    }

    @Test
    void shouldLeaveNothingRegisteredInTheEngineWhenTheSecondNicRefuses() {
        String devices = twoDomains();
        try (TransferEngine e = TransferEngine.create(EngineConfig.builder()
                .environment(Map.of())
                .protocol("efa")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .set(EfaSettings.PROVIDER, TCP)
                .set(EngineConfig.DEVICE, devices)
                .build())) {
            assertEquals(2, e.localDescriptor().field("devices").getAsJsonArray().size());
            FabricFaults.failRegistration(2, 12);
            MooncakeException x = assertThrows(MooncakeException.class, () -> e.allocate(1 << 20));
            assertEquals(ErrorCode.REGISTRATION, x.code(), x.toString());
            assertTrue(e.localDescriptor().buffers().isEmpty(), "nothing stays registered");
            try (HostMemory ok = e.allocate(1 << 20)) {
                assertEquals(2, e.localDescriptor().bufferContaining(ok.address(), 1).rkeys().length);
            }
        }
    }

    @Test
    void shouldPublishProviderKeysAndBindRegionsWhenTheProviderAsksForThem() throws Exception {
        FabricFaults.addMrMode(LibFabric.FI_MR_PROV_KEY | LibFabric.FI_MR_ENDPOINT);
        try (EfaPair pair = new EfaPair(EfaSettings.PROVIDER, TCP, EngineConfig.DEVICE, "lo")) {
            long len = 1 << 16;
            long m = NativeMemory.map(len);
            MemoryRegion region = new MemoryRegion(m, len, MemoryLocation.CPU);
            try {
                RegionRegistration reg = pair.b.registerRegion(region);
                long key = reg.descriptorFields().getAsJsonArray("rkey").get(0).getAsLong();
                assertTrue(key >= 1 << 20, "the key the provider chose, not our counter: " + key);
                pair.b.unregisterRegion(region, reg);
            } finally {
                NativeMemory.unmap(m, len);
            }
            Map<String, Long> counters = writeAndCheck(pair);
            assertTrue(counters.get("lo.operations") > 0);
        }
    }
}
