package io.mooncake4j.transport.efa;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.fabric.FabricInfo;
import io.mooncake4j.nativeio.fabric.LibFabric;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Submission;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Mooncake's EFA transport over libfabric: one context per NIC ({@link EfaNic}: fabric, domain,
 * {@code FI_AV_TABLE} address vector, {@code FI_CQ_FORMAT_DATA} completion queue, one shared RDM
 * endpoint for every peer), NICs from {@code fi_getinfo} for {@code MC_EFA_PROVIDER} filtered by
 * {@code MOONCAKE_DEVICE}; regions registered on every NIC ({@link EfaRegistration}); one-sided
 * {@code fi_write}/{@code fi_read} round-robin across NICs, posted and reaped by {@link EfaProgress}
 * threads ({@code MC_EFA_CQ_THREADS}).
 *
 * <p>Peers: the first submission to (or {@link #warmup} of) a peer runs Mooncake's Connection
 * handshake for every pair of local NIC and peer device, exchanging endpoint addresses ({@code
 * efa_addr}), and each side inserts the other into its address vector.
 *
 * <p>Host memory is registered with {@code FI_HMEM_SYSTEM}; GPU regions ({@code cuda:N}) through
 * {@link EfaDeviceMemory}, with {@code FI_HMEM_CUDA} and the device ordinal, which needs a libfabric
 * built with CUDA (the EFA installer's).
 */
final class EfaTransport implements Transport {
    private static final Logger log = LoggerFactory.getLogger(EfaTransport.class);

    private final TransportContext context;
    private final EfaSettings settings;
    private final List<EfaNic> nics;
    private final EfaDeviceMemory devices;
    private final List<EfaProgress> progress = new ArrayList<>();
    private final long slice;
    private final AtomicInteger nextProgress = new AtomicInteger();
    private final Set<EfaRegistration> registrations = ConcurrentHashMap.newKeySet();
    private final Map<String, EfaPeer> peers = new ConcurrentHashMap<>();
    private final AtomicBoolean closed = new AtomicBoolean();
    /** How long {@link #unregisterRegion} waits for the progress threads to stop users of a region. */
    static final long RELEASE_WAIT_MILLIS = 3_000;

    EfaTransport(TransportContext context, EfaSettings settings) {
        this.context = context;
        this.settings = settings;
        EfaDeviceMemory.Opened opened;
        try {
            opened = EfaDeviceMemory.query(settings.provider, context.devices());
        } catch (RuntimeException e) {
            throw new MooncakeException(
                    ErrorCode.TRANSPORT_UNAVAILABLE,
                    "EFA: cannot open provider '" + settings.provider + "': " + e.getMessage(), e);
        }
        this.devices = opened.devices();
        this.nics = openNics(settings, opened.query());
        try {
            long maxMessage = Long.MAX_VALUE;
            for (EfaNic nic : nics) {
                maxMessage = Math.min(maxMessage, nic.fabric.info().maxMessageSize());
            }
            this.slice = Math.max(1, Math.min(settings.sliceSize, maxMessage));
            int threads = settings.cqThreads == 0 ? nics.size() : Math.min(settings.cqThreads, nics.size());
            for (int t = 0; t < threads; t++) {
                List<EfaNic> mine = new ArrayList<>();
                for (int k = t; k < nics.size(); k += threads) {
                    mine.add(nics.get(k));
                }
                progress.add(new EfaProgress(mine, slice, "mooncake4j-efa-cq-" + t, this::afterReset));
            }
            progress.forEach(EfaProgress::start);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        log.info("EFA transport on {} ({})", nics, settings);
    }

    private static List<EfaNic> openNics(EfaSettings settings, FabricInfo.Query query) {
        List<EfaNic> opened = new ArrayList<>();
        try (FabricInfo.Query q = query) {
            List<String> seen = new ArrayList<>();
            for (FabricInfo info : q.infos()) {
                String domain = info.domain();
                if (seen.contains(domain)
                        || (!settings.devices.isEmpty() && !settings.devices.contains(domain))) {
                    continue;
                }
                seen.add(domain);
                opened.add(EfaNic.open(opened.size(), info, settings.maxWr));
            }
            List<String> missing = settings.devices.stream().filter(d -> !seen.contains(d)).toList();
            if (opened.isEmpty() || !missing.isEmpty()) {
                throw new MooncakeException(
                        ErrorCode.TRANSPORT_UNAVAILABLE,
                        "EFA: provider '" + settings.provider + "' has no NIC named "
                                + (missing.isEmpty() ? settings.devices : missing) + "; it offers "
                                + domains(q.infos()) + " (set MOONCAKE_DEVICE to some of them)");
            }
            return List.copyOf(opened);
        } catch (RuntimeException e) {
            opened.forEach(EfaNic::close);
            if (e instanceof MooncakeException) {
                throw e;
            }
            throw new MooncakeException(
                    ErrorCode.TRANSPORT_UNAVAILABLE,
                    "EFA: cannot open provider '" + settings.provider + "': " + e.getMessage(), e);
        }
    }

    private static List<String> domains(List<FabricInfo> infos) {
        return infos.stream().map(FabricInfo::domain).distinct().toList();
    }

    /**
     * Per NIC: operations completed and bytes they moved ({@code <nic>.operations}, {@code
     * <nic>.bytes}), endpoint resets ({@code <nic>.endpoint_resets}) and peers' new addresses learned
     * ({@code <nic>.addresses_learned}).
     */
    @Override
    public Map<String, Long> counters() {
        Map<String, Long> out = new java.util.LinkedHashMap<>();
        for (EfaNic nic : nics) {
            out.put(nic.name + ".operations", nic.operations.sum());
            out.put(nic.name + ".bytes", nic.bytes.sum());
            out.put(nic.name + ".endpoint_resets", nic.resets.sum());
            out.put(nic.name + ".addresses_learned", nic.addressesLearned.sum());
        }
        return out;
    }

    @Override
    public String protocol() {
        return "efa";
    }

    @Override
    public void describe(JsonObject descriptor) {
        EfaDescriptors.describe(descriptor, nics);
    }

    @Override
    public RegionRegistration registerRegion(MemoryRegion region) {
        ensureOpen();
        EfaRegistration r = devices.register(region, nics);
        registrations.add(r);
        return r;
    }

    /**
     * Stops the operations still using the region, then closes its registration on every NIC. An
     * operation the provider accepted cannot be cancelled: a NIC that still has one on this region
     * (its peer stopped or unreachable; the engine calls this only after the deadline of every
     * request on it) has its endpoint reset by its progress thread ({@link EfaProgress#release}),
     * which ends every operation in flight on that NIC. The registration is closed only after that,
     * so the provider never holds an operation on a closed registration; if the progress threads do
     * not answer within {@value #RELEASE_WAIT_MILLIS} ms, it is closed when they do.
     */
    @Override
    public void unregisterRegion(MemoryRegion region, RegionRegistration registration) {
        if (!(registration instanceof EfaRegistration r) || !registrations.remove(r)) {
            return;
        }
        CompletableFuture<?>[] released = progress.stream().map(p -> p.release(r)).toArray(CompletableFuture[]::new);
        CompletableFuture<Void> all = CompletableFuture.allOf(released);
        try {
            all.get(RELEASE_WAIT_MILLIS, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            log.warn("EFA: the progress threads did not release {} within {} ms; its registration closes when they do",
                    region, RELEASE_WAIT_MILLIS);
            all.whenComplete((v, t) -> r.close(nics));
            return;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            all.whenComplete((v, t) -> r.close(nics));
            return;
        } catch (ExecutionException e) {
            log.error("EFA: releasing {} failed; its registration is closed anyway", region, e.getCause());
        }
        r.close(nics);
    }

    /**
     * On the progress thread, after {@code nic}'s endpoint was reset: regions bound to the endpoint
     * ({@code FI_MR_ENDPOINT}) are bound to the new one. A new address (EFA gives one: a new queue
     * pair) is published with the next descriptor, and announced at once, with a Connection
     * handshake, to every peer device that knows the old one (those this NIC connected to and those
     * that connected to it), which then sends to the new one ({@link #learnAddress}).
     */
    private void afterReset(EfaNic nic, boolean addressChanged) {
        if ((nic.fabric.mrMode() & LibFabric.FI_MR_ENDPOINT) != 0) {
            for (EfaRegistration r : registrations) {
                r.rebind(nic);
            }
        }
        if (!addressChanged) {
            return;
        }
        Set<String> paths = new java.util.TreeSet<>(nic.knownBy);
        for (EfaPeer p : peers.values()) {
            for (String device : p.deviceNames) {
                paths.add(p.segment + "@" + device);
            }
        }
        log.warn("EFA {}: the reset endpoint has a new address; announcing it to {}", nic, paths);
        for (String path : paths) {
            CompletableFuture.runAsync(() -> announce(nic, path)).exceptionally(t -> {
                log.warn("EFA {}: announcing its new address to {} failed: {}", nic, path, t.toString());
                return null;
            });
        }
    }

    /** A Connection handshake carrying {@code nic}'s (new) address to the peer device at {@code peerPath}. */
    private void announce(EfaNic nic, String peerPath) {
        JsonObject request = connectionRequest(nic, peerPath);
        JsonObject reply = context.connect(peerPath.substring(0, peerPath.lastIndexOf('@')), request,
                context.config().handshakeTimeout());
        String refused = string(reply, "reply_msg");
        if (!refused.isEmpty()) {
            throw new MooncakeException(ErrorCode.IO, peerPath + " refused: " + refused);
        }
    }

    private JsonObject connectionRequest(EfaNic nic, String peerPath) {
        JsonObject request = new JsonObject();
        request.addProperty("local_nic_path", context.localSegmentName() + "@" + nic.name);
        request.addProperty("peer_nic_path", peerPath);
        request.addProperty("efa_addr", nic.addressHex);
        request.addProperty("reply_msg", "");
        return request;
    }

    @Override
    public void submit(SegmentDescriptor peer, Submission work) {
        int n = work.size();
        EfaPeer p;
        try {
            ensureOpen();
            p = connect(peer);
        } catch (RuntimeException e) {
            for (int i = 0; i < n; i++) {
                work.fail(i, TransferStatus.FAILED, e.getMessage());
            }
            return;
        }
        for (int i = 0; i < n; i++) {
            String refused = refusal(peer, p, work, i);
            if (refused != null) {
                work.fail(i, TransferStatus.INVALID, refused);
            }
        }
        progress.get(Math.floorMod(nextProgress.getAndIncrement(), progress.size())).submit(new EfaWork(work, p));
    }

    /** Why request {@code i} cannot be sent (keys missing for a device we use), or null. */
    private String refusal(SegmentDescriptor peer, EfaPeer p, Submission work, int i) {
        BufferDescriptor buffer = work.remoteBuffer(i);
        long[] rkeys = buffer.rkeys();
        if (rkeys.length != p.deviceNames.length) {
            return "EFA: buffer " + buffer + " of " + peer.name() + " has " + rkeys.length
                    + " rkeys for " + p.deviceNames.length + " devices; the peer's descriptor is malformed";
        }
        for (int k = 0; k < nics.size(); k++) {
            if (rkeys[p.deviceFor(k)] == 0) {
                return "EFA: buffer " + buffer + " of " + peer.name() + " is not registered on device "
                        + p.deviceNames[p.deviceFor(k)];
            }
        }
        if (!(work.localRegistration(i) instanceof EfaRegistration)) {
            return "EFA: the local memory of request " + i + " is not registered with the efa transport";
        }
        return null;
    }

    @Override
    public void abort(Submission work) {
        // The progress thread sees work.isAborted() and drops what it has not issued yet; issued
        // operations finish or fail on their own (libfabric cannot cancel a posted RMA).
    }

    @Override
    public void warmup(SegmentDescriptor peer) {
        ensureOpen();
        connect(peer);
    }

    /** The peer's address-vector entries, after the Connection handshake of every NIC pair. */
    private EfaPeer connect(SegmentDescriptor peer) {
        EfaPeer p = peers.get(peer.name());
        if (p != null && p.matches(peer)) {
            return p;
        }
        synchronized (this) {
            p = peers.get(peer.name());
            if (p != null && p.matches(peer)) {
                return p;
            }
            List<String> names = EfaDescriptors.devices(peer, "name");
            List<String> gids = EfaDescriptors.devices(peer, "gid");
            if (names.isEmpty()) {
                throw new MooncakeException(
                        ErrorCode.INVALID_ARGUMENT,
                        "EFA: segment " + peer.name() + " publishes no devices (protocol '"
                                + peer.protocol() + "'); it does not serve the efa transport");
            }
            EfaPeer fresh = new EfaPeer(peer.name(), names, gids, nics.size());
            List<CompletableFuture<Void>> pairs = new ArrayList<>();
            for (EfaNic nic : nics) {
                for (int d = 0; d < names.size(); d++) {
                    int device = d;
                    pairs.add(CompletableFuture.runAsync(() -> handshake(fresh, nic, device)));
                }
            }
            try {
                CompletableFuture.allOf(pairs.toArray(CompletableFuture[]::new)).join();
            } catch (RuntimeException e) {
                Throwable cause = e.getCause() != null ? e.getCause() : e;
                throw cause instanceof MooncakeException me
                        ? me
                        : new MooncakeException(ErrorCode.IO, "EFA: handshake with " + peer.name() + " failed: " + cause, cause);
            }
            peers.put(peer.name(), fresh);
            return fresh;
        }
    }

    /** Mooncake's Connection handshake for (local NIC, peer device). */
    private void handshake(EfaPeer peer, EfaNic nic, int device) {
        JsonObject request = connectionRequest(nic, peer.segment + "@" + peer.deviceNames[device]);
        JsonObject reply = context.connect(peer.segment, request, context.config().handshakeTimeout());
        String refused = string(reply, "reply_msg");
        if (!refused.isEmpty()) {
            throw new MooncakeException(ErrorCode.IO, "EFA: " + peer.segment + " refused the connection of "
                    + nic.name + " to " + peer.deviceNames[device] + ": " + refused);
        }
        String address = string(reply, "efa_addr");
        if (address.isEmpty()) {
            address = peer.gids.get(device);
        }
        peer.dest[nic.index][device] = nic.peer(address);
    }

    @Override
    public JsonObject onConnectionRequest(JsonObject request) {
        JsonObject reply = new JsonObject();
        String peerPath = string(request, "peer_nic_path");
        String device = peerPath.substring(peerPath.lastIndexOf('@') + 1);
        reply.addProperty("local_nic_path", context.localSegmentName() + "@" + device);
        reply.addProperty("peer_nic_path", string(request, "local_nic_path"));
        EfaNic nic = nics.stream().filter(n -> n.name.equals(device)).findFirst().orElse(null);
        String address = string(request, "efa_addr");
        try {
            if (closed.get()) {
                throw new IllegalStateException("the engine is closing");
            }
            if (nic == null) {
                throw new IllegalArgumentException("no device '" + device + "' here; devices: "
                        + nics.stream().map(n -> n.name).toList());
            }
            long dest = nic.peer(address);
            String requester = string(request, "local_nic_path");
            nic.knownBy.add(requester);
            learnAddress(requester, nic, dest);
            reply.addProperty("efa_addr", nic.addressHex);
            reply.addProperty("reply_msg", "");
        } catch (RuntimeException e) {
            reply.addProperty("efa_addr", "");
            reply.addProperty("reply_msg", "EFA: " + e.getMessage());
        }
        return reply;
    }

    /**
     * A known peer's device handshaking again (its endpoint was reset and has a new address): this
     * engine's operations from {@code nic} to that device go to {@code dest} from now on.
     */
    private void learnAddress(String peerNicPath, EfaNic nic, long dest) {
        int at = peerNicPath.lastIndexOf('@');
        EfaPeer known = at < 0 ? null : peers.get(peerNicPath.substring(0, at));
        int device = known == null ? -1 : known.deviceIndex(peerNicPath.substring(at + 1));
        if (device >= 0 && known.dest[nic.index][device] != -1 && known.dest[nic.index][device] != dest) {
            known.dest[nic.index][device] = dest;
            nic.addressesLearned.increment();
        }
    }

    private static String string(JsonObject o, String field) {
        JsonElement e = o.get(field);
        return e == null || e.isJsonNull() ? "" : e.getAsString();
    }

    private void ensureOpen() {
        if (closed.get()) {
            throw new MooncakeException(ErrorCode.CLOSED, "the efa transport is closed");
        }
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        for (EfaProgress p : progress) {
            p.stop(5_000);
        }
        // Endpoints first: the provider drops what was posted on them (an RMA cannot be cancelled
        // otherwise), so the registrations close with nothing in flight on them.
        for (EfaNic nic : nics) {
            nic.fabric.closeEndpoint();
        }
        for (EfaProgress p : progress) {
            p.failRemaining("the efa transport closed");
        }
        for (EfaRegistration r : registrations) {
            r.close(nics);
        }
        registrations.clear();
        for (EfaNic nic : nics) {
            nic.close();
        }
    }
}
