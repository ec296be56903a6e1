package io.mooncake4j.internal;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.DeviceIpcHandle;
import io.mooncake4j.spi.DeviceIpcMapping;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * GPU memory moved device to device between processes of one host (CUDA IPC), beside the network
 * transports. This engine publishes its host's boot id ({@value #BOOT_ID_FIELD}) and, for each GPU
 * buffer its device provider can export, a {@link DeviceIpcHandle} ({@value DeviceIpcHandle#FIELD});
 * a request to a peer that publishes the same boot id, whose remote buffer carries a handle, is
 * copied by this engine's device copier through the peer's buffer mapped here ({@link IpcPeer}).
 * Off with {@code MC_CUDA_IPC=0}.
 */
public final class CudaIpc implements AutoCloseable {
    /** The top-level descriptor field naming the host (its kernel boot id). */
    public static final String BOOT_ID_FIELD = "mc4j_boot_id";
    private static final Logger LOG = LoggerFactory.getLogger(CudaIpc.class);
    private static final Path BOOT_ID = Path.of("/proc/sys/kernel/random/boot_id");

    private final Devices devices;
    private final String bootId; // null: IPC off, or no boot id to recognise a host by
    private final Map<Long, JsonObject> exports = new ConcurrentHashMap<>(); // region address -> field
    private final Map<String, IpcPeer> peers = new ConcurrentHashMap<>();
    private final AtomicBoolean exportFailureLogged = new AtomicBoolean();
    private final LongAdder requests = new LongAdder();
    private final LongAdder bytes = new LongAdder();
    private final AtomicLong opens = new AtomicLong();
    private final AtomicLong openFailures = new AtomicLong();
    private final AtomicLong closes = new AtomicLong();
    private final AtomicLong exportFailures = new AtomicLong();
    private volatile boolean closed;

    private CudaIpc(Devices devices, String bootId) {
        this.devices = devices;
        this.bootId = bootId;
    }

    /** From {@code MC_CUDA_IPC} and {@code MC_BOOT_ID} (else the kernel's boot id). */
    public static CudaIpc create(EngineConfig config, Devices devices) {
        if (!config.cudaIpc()) {
            return new CudaIpc(devices, null);
        }
        String id = config.bootId();
        if (id == null) {
            try {
                id = Files.readString(BOOT_ID).trim();
            } catch (IOException | RuntimeException e) {
                LOG.debug("no boot id ({}): CUDA IPC with peers on this host is off", e.toString());
            }
        }
        return new CudaIpc(devices, id == null || id.isEmpty() ? null : id);
    }

    /** Adds {@value #BOOT_ID_FIELD} to the local descriptor's top-level fields when IPC is on. */
    public void describe(JsonObject descriptor) {
        if (bootId != null) {
            descriptor.addProperty(BOOT_ID_FIELD, bootId);
        }
    }

    /** Exports each GPU region (once, at registration) whose provider can; others publish no handle. */
    public void exportAll(List<MemoryRegion> regions) {
        if (bootId == null) {
            return;
        }
        for (MemoryRegion r : regions) {
            if (!r.location().isCuda()) {
                continue;
            }
            try {
                DeviceIpcHandle h = devices.providers().require(r.location()).exportIpc(r.address(), r.length());
                if (h != null) {
                    exports.put(r.address(), h.toJson());
                }
            } catch (MooncakeException e) {
                exportFailures.incrementAndGet();
                if (exportFailureLogged.compareAndSet(false, true)) {
                    LOG.info("{} cannot be exported for CUDA IPC ({}); peers on this host reach it over the"
                            + " network transport (said once; cuda_ipc.export_failures counts them)", r, e.getMessage());
                }
            }
        }
    }

    /** Drops an unregistered region's export. */
    public void forget(MemoryRegion r) {
        exports.remove(r.address());
    }

    /** The buffer fields to publish for {@code r}: the transports' plus its handle, if exported. */
    public JsonObject bufferFields(MemoryRegion r, JsonObject transportFields) {
        JsonObject handle = exports.get(r.address());
        if (handle == null) {
            return transportFields;
        }
        JsonObject fields = transportFields == null ? new JsonObject() : transportFields.deepCopy();
        fields.add(DeviceIpcHandle.FIELD, handle.deepCopy());
        return fields;
    }

    /**
     * The mapping through which a request of {@code length} bytes to {@code buffer} of peer {@code
     * segment} (descriptor {@code d}) is copied, pinned until the copy ends ({@link IpcMapping#unpin()}); null when the
     * request goes to the network transport: IPC off, the peer on another host, the buffer not GPU
     * memory or published without a handle, or IPC failed with this peer before.
     */
    public IpcMapping pin(String segment, SegmentDescriptor d, BufferDescriptor buffer, long length) {
        if (bootId == null || closed || !buffer.name().startsWith("cuda") || !buffer.extra().has(DeviceIpcHandle.FIELD)) {
            return null;
        }
        IpcMapping m = peers.computeIfAbsent(segment, s -> new IpcPeer(s, this)).pin(d, buffer);
        if (m != null) {
            requests.increment();
            bytes.add(length);
        }
        return m;
    }

    /**
     * A peer segment's descriptor changed (re-fetched, or updated by the metadata store): the
     * mappings of buffers it no longer shows are retired now, not at the segment's next request.
     */
    public void segmentChanged(String segment, SegmentDescriptor d) {
        IpcPeer p = peers.get(segment);
        if (p != null) {
            p.refresh(d);
        }
    }

    boolean isClosed() {
        return closed;
    }

    boolean isSameHost(SegmentDescriptor d) {
        var e = d.field(BOOT_ID_FIELD);
        return e != null && e.isJsonPrimitive() && bootId.equals(e.getAsString());
    }

    /** Maps a peer's buffer with the CUDA provider (the one TCP staging uses: the provider of {@code cuda:0}). */
    DeviceIpcMapping open(DeviceIpcHandle handle, long length) {
        return devices.providers().require(MemoryLocation.cuda(0)).openIpc(handle, length);
    }

    IpcMapping track(DeviceIpcMapping mapped, long peerAddress) {
        opens.incrementAndGet();
        return new IpcMapping(mapped, peerAddress, m -> closes.incrementAndGet());
    }

    void failed(String segment, String reason) {
        openFailures.incrementAndGet();
        LOG.warn("CUDA IPC with segment {} on this host failed ({}); its GPU buffers are reached over the network"
                + " transport from now on (set {}=0 to stop trying)", segment, reason, EngineConfig.CUDA_IPC);
    }

    /**
     * {@code requests}, {@code bytes}: requests and bytes copied through IPC; {@code
     * opens}, {@code closes}: peer buffers mapped and unmapped; {@code open_failures}:
     * segments given up on; {@code export_failures}: local GPU regions that could not be exported.
     */
    public Map<String, Long> counters() {
        return Map.of(
                "requests", requests.sum(),
                "bytes", bytes.sum(),
                "opens", opens.get(),
                "closes", closes.get(),
                "open_failures", openFailures.get(),
                "export_failures", exportFailures.get());
    }

    /** Retires every mapping: each is unmapped now, or when the last copy through it ends. Idempotent. */
    @Override
    public void close() {
        closed = true;
        peers.values().forEach(IpcPeer::close);
        exports.clear();
    }
}
