package io.mooncake4j.transport.efa;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.nativeio.fabric.FabricFaults;
import io.mooncake4j.spi.RegionRegistration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Operations a peer never answers ({@link MuteNic}: its side stops progressing once connected).
 * Unregistering memory that a posted operation still uses resets the NIC's endpoint: the operation
 * ends FAILED saying why and, when the new endpoint has a new address (the fault seam does what EFA
 * does), the peers that knew the old one are told and reach the new one. And writes on an ordered
 * provider wait for the delivery of the last write of their batch before they are reported.
 */
@Tag("integration")
@Timeout(120)
class EfaEndpointResetTest {
    private static final int LENGTH = 1 << 20;

    @AfterEach
    void clearFaults() {
        FabricFaults.clear();
    }

    @Test
    void shouldEndTheStuckReadAndAnnounceTheNewAddressWhenItsMemoryIsUnregistered() throws Exception {
        long stuckMemory = NativeMemory.map(LENGTH);
        long target = NativeMemory.map(LENGTH);
        long source = NativeMemory.map(LENGTH);
        MemoryRegion stuckRegion = new MemoryRegion(stuckMemory, LENGTH, MemoryLocation.CPU);
        MemoryRegion targetRegion = new MemoryRegion(target, LENGTH, MemoryLocation.CPU);
        MemoryRegion sourceRegion = new MemoryRegion(source, LENGTH, MemoryLocation.CPU);
        try (EfaPair pair = new EfaPair(EfaSettings.PROVIDER, "tcp;ofi_rxm", EngineConfig.DEVICE, "lo");
                MuteNic mute = new MuteNic(LENGTH)) {
            RegionRegistration stuckReg = pair.a.registerRegion(stuckRegion);
            RegionRegistration targetReg = pair.a.registerRegion(targetRegion);
            RegionRegistration sourceReg = pair.b.registerRegion(sourceRegion);
            SegmentDescriptor a = EfaPair.describe("127.0.0.1:1", pair.a, targetRegion, targetReg);
            String oldGid = gid(a);
            fillRandom(source, LENGTH, 3);
            assertCompleted(write(pair.b, a, source, target, LENGTH, sourceReg)); // b knows a's address now
            assertSameBytes(source, target, LENGTH, "before the reset");

            mute.progress();
            assertCompleted(write(pair.a, mute.descriptor, stuckMemory, mute.memory, LENGTH, stuckReg)); // connected
            mute.stopProgress();
            EfaPair.Work stuck = new EfaPair.Work(Opcode.READ, new long[] {stuckMemory}, new long[] {mute.memory},
                    new long[] {LENGTH}, stuckReg, mute.descriptor.bufferContaining(mute.memory, 1));
            pair.a.submit(mute.descriptor, stuck);
            TimeUnit.MILLISECONDS.sleep(300);
            assertFalse(stuck.isDone(0), "the mute peer answered: " + stuck.status[0]);

            FabricFaults.newAddressOnReset();
            pair.a.unregisterRegion(stuckRegion, stuckReg);
            assertTrue(stuck.await(), "the read was reported");
            assertEquals(TransferStatus.FAILED, stuck.status[0]);
            assertTrue(stuck.reason[0].contains("endpoint was reset"), stuck.reason[0]);
            assertEquals(1L, pair.a.counters().get("lo.endpoint_resets"));
            assertNotEquals(oldGid, gid(EfaPair.describe("127.0.0.1:1", pair.a, targetRegion, targetReg)),
                    "the new address is published");

            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (pair.b.counters().get("lo.addresses_learned") == 0 && System.nanoTime() < end) {
                TimeUnit.MILLISECONDS.sleep(10);
            }
            assertEquals(1L, pair.b.counters().get("lo.addresses_learned"), "b was told a's new address");
            fillRandom(source, LENGTH, 4);
            assertCompleted(write(pair.b, a, source, target, LENGTH, sourceReg)); // the descriptor b holds: old gid
            assertSameBytes(source, target, LENGTH, "after the reset, at the new address");
            pair.a.unregisterRegion(targetRegion, targetReg);
            pair.b.unregisterRegion(sourceRegion, sourceReg);
        } finally {
            NativeMemory.unmap(stuckMemory, LENGTH);
            NativeMemory.unmap(target, LENGTH);
            NativeMemory.unmap(source, LENGTH);
        }
    }

    /**
     * tcp;ofi_rxm places writes in posting order, so only the last of a batch asks for delivery
     * completion: the others are sent (their transmit completions come) but must not be reported
     * before it completes, which a peer that stopped answering never lets happen.
     */
    @Test
    void shouldReportNoWriteOfABatchBeforeItsLastIsDeliveredWhenWritesAreOrdered() throws Exception {
        int block = 64 << 10;
        int blocks = 4;
        long source = NativeMemory.map(LENGTH);
        MemoryRegion sourceRegion = new MemoryRegion(source, LENGTH, MemoryLocation.CPU);
        try (EfaPair pair = new EfaPair(EfaSettings.PROVIDER, "tcp;ofi_rxm", EngineConfig.DEVICE, "lo");
                MuteNic mute = new MuteNic(LENGTH)) {
            RegionRegistration reg = pair.a.registerRegion(sourceRegion);
            mute.progress();
            assertCompleted(write(pair.a, mute.descriptor, source, mute.memory, block, reg)); // connected
            mute.stopProgress();
            fillRandom(source, LENGTH, 8);
            long[] local = new long[blocks];
            long[] remote = new long[blocks];
            long[] length = new long[blocks];
            for (int i = 0; i < blocks; i++) { // every other block: four operations, not one merged
                local[i] = source + 2L * i * block;
                remote[i] = mute.memory + 2L * i * block;
                length[i] = block;
            }
            EfaPair.Work w = new EfaPair.Work(Opcode.WRITE, local, remote, length, reg,
                    mute.descriptor.bufferContaining(mute.memory, 1));
            pair.a.submit(mute.descriptor, w);
            TimeUnit.MILLISECONDS.sleep(500); // 256 KiB fit in the sockets' buffers: every transmit completes
            for (int i = 0; i < blocks; i++) {
                assertFalse(w.isDone(i), "write " + i + " reported " + w.status[i] + " before its batch was delivered");
            }
            mute.progress();
            assertTrue(w.await(), "reported once the peer answers");
            for (int i = 0; i < blocks; i++) {
                assertEquals(TransferStatus.COMPLETED, w.status[i], w.reason[i]);
                assertSameBytes(local[i], remote[i], block, "block " + i);
            }
            pair.a.unregisterRegion(sourceRegion, reg);
        } finally {
            NativeMemory.unmap(source, LENGTH);
        }
    }

    private static EfaPair.Work write(EfaTransport from, SegmentDescriptor to, long source, long target, long length,
            RegionRegistration reg) throws InterruptedException {
        EfaPair.Work w = new EfaPair.Work(Opcode.WRITE, new long[] {source}, new long[] {target},
                new long[] {length}, reg, to.bufferContaining(target, 1));
        from.submit(to, w);
        assertTrue(w.await(), "the write was reported");
        return w;
    }

    private static void assertCompleted(EfaPair.Work w) {
        assertEquals(TransferStatus.COMPLETED, w.status[0], w.reason[0]);
    }

    private static String gid(SegmentDescriptor d) {
        return d.field("devices").getAsJsonArray().get(0).getAsJsonObject().get("gid").getAsString();
    }
}
