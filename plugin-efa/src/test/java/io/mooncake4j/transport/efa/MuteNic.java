package io.mooncake4j.transport.efa;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.nativeio.fabric.CompletionSlots;
import io.mooncake4j.nativeio.fabric.FabricInfo;
import io.mooncake4j.nativeio.fabric.FabricMemoryRegion;
import io.mooncake4j.nativeio.fabric.FabricNic;
import io.mooncake4j.nativeio.fabric.LibFabric;
import java.util.HexFormat;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A peer segment that is a bare {@code tcp;ofi_rxm} NIC on {@code lo} with one registered buffer,
 * answering an {@link EfaPair}'s Connection handshakes. Its side progresses only while {@link
 * #progress} runs: otherwise it never answers, as a stopped process.
 */
final class MuteNic implements AutoCloseable {
    static final String SEGMENT = "127.0.0.1:3";
    final long memory;
    final long length;
    final SegmentDescriptor descriptor;
    private final FabricInfo.Query query;
    private final FabricNic nic;
    private final FabricMemoryRegion region;
    private final AtomicBoolean progressing = new AtomicBoolean();
    private Thread progress;

    MuteNic(long length) {
        this.length = length;
        this.query = FabricInfo.Query.run("tcp;ofi_rxm", null, EfaNic.MR_MODE_HINTS);
        this.nic = FabricNic.open(query.infos().stream().filter(i -> i.domain().equals("lo")).findFirst().orElseThrow(), 16);
        this.memory = NativeMemory.map(length);
        this.region = nic.register(memory, length, 1, LibFabric.FI_HMEM_SYSTEM, 0);
        String address = HexFormat.of().formatHex(nic.address());
        this.descriptor = describe(address);
        EfaPair.OTHERS.put(SEGMENT, request -> accept(request, address));
    }

    /** Drives the NIC's progress on a thread of its own until {@link #stopProgress}. */
    void progress() {
        progressing.set(true);
        progress = new Thread(() -> {
            CompletionSlots slots = new CompletionSlots(16);
            while (progressing.get()) {
                nic.reap(slots, 16);
            }
        }, "mute-progress");
        progress.start();
    }

    /** Stops driving it: from now on it never answers. */
    void stopProgress() throws InterruptedException {
        progressing.set(false);
        if (progress != null) {
            progress.join(10_000);
        }
    }

    @Override
    public void close() throws InterruptedException {
        stopProgress();
        EfaPair.OTHERS.remove(SEGMENT);
        region.close();
        nic.close();
        query.close();
        NativeMemory.unmap(memory, length);
    }

    private static JsonObject accept(JsonObject request, String address) {
        JsonObject reply = new JsonObject();
        reply.addProperty("local_nic_path", SEGMENT + "@lo");
        reply.addProperty("peer_nic_path", request.get("local_nic_path").getAsString());
        reply.addProperty("efa_addr", address);
        reply.addProperty("reply_msg", "");
        return reply;
    }

    /** One device, one buffer with its key. */
    private SegmentDescriptor describe(String address) {
        JsonObject d = new JsonObject();
        d.addProperty("name", SEGMENT);
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
        buffer.addProperty("length", length);
        JsonArray keys = new JsonArray();
        keys.add(region.key());
        buffer.add("rkey", keys);
        buffer.add("lkey", keys);
        JsonArray buffers = new JsonArray();
        buffers.add(buffer);
        d.add("buffers", buffers);
        return SegmentDescriptor.fromJson(d);
    }
}
