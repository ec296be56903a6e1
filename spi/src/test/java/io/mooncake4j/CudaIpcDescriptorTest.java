package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceIpcHandle;
import io.mooncake4j.testkit.FakeGpu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The descriptor fields of CUDA IPC ({@code mc4j_boot_id}, {@code mc4j_cuda_ipc}): written only
 * for GPU buffers a provider exports, surviving a round trip, absent from Mooncake's descriptors
 * (which still parse and route as before), and refused with a clear message when malformed.
 */
@Timeout(60)
class CudaIpcDescriptorTest {
    private static final String MOONCAKE_TCP = "{\"name\":\"10.0.0.2:15123\",\"protocol\":\"tcp\",\"tcp_data_port\":40001,"
            + "\"tcp_proto_version\":2,\"timestamp\":\"1733000000000\",\"buffers\":[{\"name\":\"cuda:0\","
            + "\"addr\":140200000000000,\"length\":1048576},{\"name\":\"cpu:0\",\"addr\":140300000000000,\"length\":4096}]}";

    @AfterEach
    void reset() {
        FakeGpu.sharing = false;
    }

    private static TransferEngine engine(Map<String, String> settings) {
        EngineConfig.Builder b = TransferEngineTest.config();
        settings.forEach(b::set);
        return FakeGpu.installedFor(() -> TransferEngine.create(b.build()));
    }

    @Test
    void shouldPublishTheBootIdAndAHandlePerExportedGpuBufferOnly() throws Exception {
        FakeGpu.sharing = true;
        try (TransferEngine engine = engine(Map.of());
                HostMemory host = engine.allocate(4096);
                DeviceAllocation raw = FakeGpu.allocateDevice(16384)) {
            engine.registerMemory(raw.address() + 8192, 4096, "cuda:0"); // a tensor inside an allocation
            SegmentDescriptor d = engine.localDescriptor();
            String bootId = Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).trim();
            assertEquals(bootId, d.field("mc4j_boot_id").getAsString());
            BufferDescriptor gpu = d.bufferContaining(raw.address() + 8192, 4096);
            BufferDescriptor cpu = d.bufferContaining(host.address(), 4096);
            assertFalse(cpu.extra().has(DeviceIpcHandle.FIELD), "host buffers publish no handle");
            DeviceIpcHandle h = DeviceIpcHandle.fromJson(gpu.extra().get(DeviceIpcHandle.FIELD));
            assertEquals(8192, h.offset(), "bytes from the allocation's base");
            assertEquals(FakeGpu.DEVICE_ID, h.device());
            assertEquals(128, gpu.extra().getAsJsonObject(DeviceIpcHandle.FIELD).get("handle").getAsString().length());

            SegmentDescriptor back = SegmentDescriptor.parse(d.toJson().toString());
            assertEquals(d.toJson(), back.toJson());
            assertEquals(h, DeviceIpcHandle.fromJson(back.bufferContaining(raw.address() + 8192, 1).extra().get(DeviceIpcHandle.FIELD)));

            engine.unregisterMemory(raw.address() + 8192);
            assertEquals(1, engine.localDescriptor().buffers().size());
        }
    }

    @Test
    void shouldPublishNoHandleWhenTheProviderCannotExportTheMemory() {
        try (TransferEngine engine = engine(Map.of(EngineConfig.BOOT_ID, "host-a"));
                DeviceAllocation anonymous = FakeGpu.allocateDevice(4096)) {
            engine.registerMemory(anonymous.address(), 4096, "cuda:0"); // sharing off: the provider exports nothing
            FakeGpu.sharing = true; // now it can export, but not this anonymous memory: it says why
            try (DeviceAllocation alsoAnonymous = allocateAnonymous()) {
                engine.registerMemory(alsoAnonymous.address(), 4096, "cuda:0");
                SegmentDescriptor d = engine.localDescriptor();
                assertEquals("host-a", d.field("mc4j_boot_id").getAsString(), "MC_BOOT_ID overrides the kernel's");
                for (BufferDescriptor b : d.buffers()) {
                    assertFalse(b.extra().has(DeviceIpcHandle.FIELD), b.toString());
                }
                assertEquals(1, engine.counters().get("cuda_ipc.export_failures"));
                engine.unregisterMemory(alsoAnonymous.address());
            }
        }
    }

    private static DeviceAllocation allocateAnonymous() {
        FakeGpu.sharing = false;
        try {
            return FakeGpu.allocateDevice(4096);
        } finally {
            FakeGpu.sharing = true;
        }
    }

    @Test
    void shouldParseMooncakeDescriptorsWithoutTheFieldsAndRoundTripThemUnchanged() {
        SegmentDescriptor d = SegmentDescriptor.parse(MOONCAKE_TCP);
        assertNull(d.field("mc4j_boot_id"));
        assertEquals(2, d.buffers().size());
        assertFalse(d.buffers().get(0).extra().has(DeviceIpcHandle.FIELD));
        assertEquals(JsonParser.parseString(MOONCAKE_TCP), d.toJson());
        // and our fields are plain unknown fields to a parser that does not know them
        JsonObject ours = d.toJson();
        ours.addProperty("mc4j_boot_id", "b");
        ours.getAsJsonArray("buffers").get(0).getAsJsonObject().add(DeviceIpcHandle.FIELD,
                new DeviceIpcHandle(new byte[64], 0, "0000:3b:00.0").toJson());
        SegmentDescriptor parsed = SegmentDescriptor.parse(ours.toString());
        assertEquals(40001, parsed.longField("tcp_data_port", 0));
        assertEquals(140200000000000L, parsed.bufferContaining(140200000000000L, 1048576).address());
    }

    @Test
    void shouldPublishNothingWhenTurnedOffAndRefuseAnUnknownSetting() {
        FakeGpu.sharing = true;
        try (TransferEngine engine = engine(Map.of(EngineConfig.CUDA_IPC, "0"));
                DeviceMemory gpu = engine.allocate(4096, MemoryLocation.cuda(0))) {
            SegmentDescriptor d = engine.localDescriptor();
            assertNull(d.field("mc4j_boot_id"));
            assertFalse(d.bufferContaining(gpu.address(), 1).extra().has(DeviceIpcHandle.FIELD));
        }
        MooncakeException e = assertThrows(MooncakeException.class, () -> engine(Map.of(EngineConfig.CUDA_IPC, "yes")));
        assertEquals(ErrorCode.CONFIGURATION, e.code());
        assertTrue(e.getMessage().contains("MC_CUDA_IPC='yes'") && e.getMessage().contains("must be 1 (on) or 0 (off)"), e.getMessage());
    }

    @Test
    void shouldRefuseAMalformedHandleSayingWhatIsWrong() {
        String[] bad = {
            "\"text\"",
            "{\"handle\":\"zz\",\"offset\":0,\"device\":\"d\"}",
            "{\"handle\":\"00ff\",\"offset\":0,\"device\":\"d\"}",
            "{\"handle\":\"" + "00".repeat(64) + "\",\"offset\":-1,\"device\":\"d\"}",
            "{\"handle\":\"" + "00".repeat(64) + "\",\"offset\":0}",
        };
        String[] says = {"must be an object", "needs a hex 'handle'", "has 64 bytes, got 2", "must not be negative", "needs a 'device'"};
        for (int i = 0; i < bad.length; i++) {
            String json = bad[i];
            MooncakeException e = assertThrows(MooncakeException.class, () -> DeviceIpcHandle.fromJson(JsonParser.parseString(json)));
            assertEquals(ErrorCode.METADATA, e.code());
            assertTrue(e.getMessage().contains("mc4j_cuda_ipc") && e.getMessage().contains(says[i]), e.getMessage());
        }
    }
}
