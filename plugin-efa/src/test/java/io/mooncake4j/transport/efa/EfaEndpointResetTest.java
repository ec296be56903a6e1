package io.mooncake4j.transport.efa;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.nativeio.fabric.CompletionSlots;
import io.mooncake4j.nativeio.fabric.FabricFaults;
import io.mooncake4j.nativeio.fabric.FabricInfo;
import io.mooncake4j.nativeio.fabric.FabricMemoryRegion;
import io.mooncake4j.nativeio.fabric.FabricNic;
import io.mooncake4j.nativeio.fabric.LibFabric;
import io.mooncake4j.spi.RegionRegistration;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Unregistering memory that a posted operation still uses, when the peer never answers (here a bare
 * NIC whose completion queue nobody reads, so its side never progresses): the NIC's endpoint is
 * reset, the operation ends FAILED saying why, and, when the new endpoint has a new address (the
 * fault seam does what EFA does), the peers that knew the old one are told and reach the new one.
 */
@Tag("integration")
@Timeout(120)
class EfaEndpointResetTest {
    private static final String TCP = "tcp;ofi_rxm";
    private static final String MUTE = "127.0.0.1:3";
    private static final int LENGTH = 1 << 20;

    @AfterEach
    void clearFaults() {
        FabricFaults.clear();
        EfaPair.OTHERS.clear();
    }

    @Test
    void shouldEndTheStuckReadAndAnnounceTheNewAddressWhenItsMemoryIsUnregistered() throws Exception {
        long stuckMemory = NativeMemory.map(LENGTH);
        long target = NativeMemory.map(LENGTH);
        long source = NativeMemory.map(LENGTH);
        MemoryRegion stuckRegion = new MemoryRegion(stuckMemory, LENGTH, MemoryLocation.CPU);
        MemoryRegion targetRegion = new MemoryRegion(target, LENGTH, MemoryLocation.CPU);
        MemoryRegion sourceRegion = new MemoryRegion(source, LENGTH, MemoryLocation.CPU);
        try (EfaPair pair = new EfaPair(EfaSettings.PROVIDER, TCP, EngineConfig.DEVICE, "lo");
                FabricInfo.Query q = FabricInfo.Query.run(TCP, null, EfaNic.MR_MODE_HINTS);
                FabricNic mute = FabricNic.open(lo(q), 16)) {
            long muteMemory = NativeMemory.map(LENGTH);
            try (FabricMemoryRegion muteRegion = mute.register(muteMemory, LENGTH, 1, LibFabric.FI_HMEM_SYSTEM, 0)) {
                String muteAddress = HexFormat.of().formatHex(mute.address());
                EfaPair.OTHERS.put(MUTE, request -> accept(request, muteAddress));
                RegionRegistration stuckReg = pair.a.registerRegion(stuckRegion);
                RegionRegistration targetReg = pair.a.registerRegion(targetRegion);
                RegionRegistration sourceReg = pair.b.registerRegion(sourceRegion);
                SegmentDescriptor a = EfaPair.describe("127.0.0.1:1", pair.a, targetRegion, targetReg);
                String oldGid = gid(a);
                fillRandom(source, LENGTH, 3);
                assertCompleted(write(pair.b, a, source, target, sourceReg)); // b knows a's address now
                assertSameBytes(source, target, LENGTH, "before the reset");

                SegmentDescriptor muteSegment = muteDescriptor(muteAddress, muteMemory, muteRegion.key());
                connectWhileProgressing(mute, () -> assertCompleted(
                        write(pair.a, muteSegment, stuckMemory, muteMemory, stuckReg)));
                EfaPair.Work stuck = new EfaPair.Work(Opcode.READ, new long[] {stuckMemory},
                        new long[] {muteMemory}, new long[] {LENGTH}, stuckReg, muteSegment.bufferContaining(muteMemory, 1));
                pair.a.submit(muteSegment, stuck);
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
                assertCompleted(write(pair.b, a, source, target, sourceReg)); // the descriptor b holds: old gid
                assertSameBytes(source, target, LENGTH, "after the reset, at the new address");
                pair.a.unregisterRegion(targetRegion, targetReg);
                pair.b.unregisterRegion(sourceRegion, sourceReg);
            } finally {
                NativeMemory.unmap(muteMemory, LENGTH);
            }
        } finally {
            NativeMemory.unmap(stuckMemory, LENGTH);
            NativeMemory.unmap(target, LENGTH);
            NativeMemory.unmap(source, LENGTH);
        }
    }

    /**
     * Runs {@code work} while a thread drives the bare NIC's progress, so that a's connection to it is
     * made; afterwards nobody does, and the NIC never answers again.
     */
    private static void connectWhileProgressing(FabricNic nic, ThrowingRunnable work) throws Exception {
        AtomicBoolean running = new AtomicBoolean(true);
        Thread progress = new Thread(() -> {
            CompletionSlots slots = new CompletionSlots(16);
            while (running.get()) {
                nic.reap(slots, 16);
            }
        }, "mute-progress");
        progress.start();
        try {
            work.run();
        } finally {
            running.set(false);
            progress.join(10_000);
        }
    }

    private interface ThrowingRunnable {
        void run() throws Exception;
    }

    private static FabricInfo lo(FabricInfo.Query q) {
        return q.infos().stream().filter(i -> i.domain().equals("lo")).findFirst().orElseThrow();
    }

    private static EfaPair.Work write(EfaTransport from, SegmentDescriptor to, long source, long target,
            RegionRegistration reg) throws InterruptedException {
        EfaPair.Work w = new EfaPair.Work(Opcode.WRITE, new long[] {source}, new long[] {target},
                new long[] {LENGTH}, reg, to.bufferContaining(target, 1));
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

    private static JsonObject accept(JsonObject request, String address) {
        JsonObject reply = new JsonObject();
        reply.addProperty("local_nic_path", MUTE + "@lo");
        reply.addProperty("peer_nic_path", request.get("local_nic_path").getAsString());
        reply.addProperty("efa_addr", address);
        reply.addProperty("reply_msg", "");
        return reply;
    }

    /** The descriptor of the bare NIC's segment: one device, one buffer with its key. */
    private static SegmentDescriptor muteDescriptor(String address, long memory, long key) {
        JsonObject d = new JsonObject();
        d.addProperty("name", MUTE);
        d.addProperty("protocol", "efa");
        JsonObject device = new JsonObject();
        device.addProperty("name", "lo");
        device.addProperty("lid", 0);
        device.addProperty("gid", address);
        JsonArray devices = new JsonArray();
        devices.add(device);
        d.add("devices", devices);
        JsonObject buffer = new JsonObject();
        buffer.addProperty("name", "cpu:0");
        buffer.addProperty("addr", memory);
        buffer.addProperty("length", LENGTH);
        JsonArray keys = new JsonArray();
        keys.add(key);
        buffer.add("rkey", keys);
        buffer.add("lkey", keys);
        JsonArray buffers = new JsonArray();
        buffers.add(buffer);
        d.add("buffers", buffers);
        return SegmentDescriptor.fromJson(d);
    }
}
