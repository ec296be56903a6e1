package io.mooncake4j;

import com.google.gson.JsonObject;
import io.mooncake4j.internal.AdvertisedAddress;
import io.mooncake4j.internal.CompletionThreads;
import io.mooncake4j.internal.CudaIpc;
import io.mooncake4j.internal.DeadlineWatchdog;
import io.mooncake4j.internal.Devices;
import io.mooncake4j.internal.InstalledTransports;
import io.mooncake4j.internal.IpcMapping;
import io.mooncake4j.internal.MemoryRegistry;
import io.mooncake4j.internal.handshake.NotificationInbox;
import io.mooncake4j.internal.ProviderLoader;
import io.mooncake4j.internal.RegisteredRegion;
import io.mooncake4j.internal.RoundPins;
import io.mooncake4j.internal.TransportSelector;
import io.mooncake4j.internal.auth.AuthSecret;
import io.mooncake4j.internal.auth.ChallengeResponse;
import io.mooncake4j.internal.handshake.HandshakeClient;
import io.mooncake4j.internal.handshake.HandshakeFrame;
import io.mooncake4j.internal.handshake.HandshakeLimits;
import io.mooncake4j.internal.handshake.HandshakeMessages;
import io.mooncake4j.internal.handshake.HandshakeServer;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceMemoryProviders;
import io.mooncake4j.spi.LocalMemory;
import io.mooncake4j.spi.MetadataContext;
import io.mooncake4j.spi.MetadataStore;
import io.mooncake4j.spi.MetadataStoreProvider;
import io.mooncake4j.spi.PeerAuthenticator;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.spi.TransportProvider;
import java.net.InetSocketAddress;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The transfer engine: registers local memory, finds peers' segments and moves bytes to and from
 * them with batched one-sided READ and WRITE, over transport plugins chosen at runtime.
 *
 * <pre>{@code
 * try (TransferEngine engine = TransferEngine.create(EngineConfig.builder().protocol("tcp").build());
 *      HostMemory mem = engine.allocate(1 << 20)) {
 *     Segment peer = engine.openSegment("10.0.0.2:15123");
 *     long remote = peer.buffers().get(0).address();
 *     engine.write(peer, mem.address(), remote, 4096);
 * }
 * }</pre>
 *
 * <p>Transports: {@code MOONCAKE_PROTOCOL} picks the primary one, whose protocol this engine
 * publishes; every other available transport is installed beside it ({@code MC_INSTALLED_TRANSPORTS}
 * restricts them) so that the engine reaches peers that publish their protocols. Each request goes to
 * the transport of its target segment's published protocol; a request to a peer whose protocol no
 * installed transport speaks ends INVALID. Requests to this engine's own segment are copied by the
 * engine: host memory at once on the submitting thread, GPU memory ({@code cuda:N}, with a {@link
 * io.mooncake4j.spi.DeviceMemoryProvider} such as {@code mooncake4j-gpu-cuda} on the class path) by
 * the device's copier, the round's GPU requests in one batched copy per submit. Requests to a GPU
 * buffer of a peer on this host go the same way through CUDA IPC ({@code MC_CUDA_IPC}), not through
 * a transport.
 *
 * <p>Thread safe. {@link #close()} stops every thread and closes every socket; requests still in
 * flight end CANCELED. Completion futures ({@link TransferBatch#completion()}) are completed on the
 * engine's completion threads, never on a transport thread.
 */
public final class TransferEngine implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(TransferEngine.class);
    /** Seconds pins get to drain after the transport stopped the transfers still holding them. */
    static final int USERS_STOPPED_WAIT_SECONDS = 5;
    /**
     * The transport of the empty submission that stands for a round of same-process device copies
     * only: the watchdog tracks it as any round, and no transport is asked to abort it.
     */
    private static final int DEVICE_COPIES_ONLY = -2;

    private final EngineConfig config;
    private final String hostname;
    private final MemoryRegistry registry = new MemoryRegistry();
    /** Regions unregistered while transfers still used them, by address: never to be freed until they drain. */
    private final Map<Long, RegisteredRegion> undrained = new ConcurrentHashMap<>();
    private final Map<String, Segment> segments = new ConcurrentHashMap<>();
    private final NotificationInbox notifications;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final Duration timeout;
    private final long timeoutNanos;
    private final Duration handshakeTimeout;
    private final int maxFrame;
    private final Object publishLock = new Object();
    private final PeerAuthenticator auth;
    private HandshakeServer handshake;
    private MetadataStore store;
    private InstalledTransports transports;
    private Devices devices;
    private CudaIpc ipc;
    private final CompletionThreads completions = new CompletionThreads();
    private final LocalCopies localCopies = new LocalCopies(this, registry);
    private DeadlineWatchdog<TransferBatch> watchdog;
    private String localName;
    private Segment localSegment;

    private TransferEngine(EngineConfig config) {
        this.config = config;
        this.timeout = config.transferTimeout();
        this.timeoutNanos = timeout.toNanos();
        this.handshakeTimeout = config.handshakeTimeout();
        this.maxFrame = config.handshakeMaxLength();
        this.notifications = NotificationInbox.from(config);
        this.auth = AuthSecret.load(config)
                .<PeerAuthenticator>map(secret -> new ChallengeResponse(secret, () -> localName))
                .orElse(PeerAuthenticator.OPEN);
        this.hostname = config.localHostname() != null ? config.localHostname() : AdvertisedAddress.detect();
        NativeMemory.ensureAvailable();
    }

    /** Creates an engine from explicit settings (unset ones come from the environment). */
    public static TransferEngine create(EngineConfig config) {
        TransferEngine engine = new TransferEngine(config);
        try {
            engine.start();
            return engine;
        } catch (RuntimeException | Error e) {
            engine.close();
            throw e;
        }
    }

    /** Creates an engine from the environment ({@code MOONCAKE_PROTOCOL}, {@code MC_*}, ...). */
    public static TransferEngine fromEnvironment() {
        return create(EngineConfig.fromEnvironment());
    }

    private void start() {
        List<TransportProvider> providers = TransportSelector.selectInstalled(config);
        MetadataStoreProvider metaProvider = selectMetadata(config.metadataServer());
        InetAddress bind = config.tcpBindAddress();
        String bindHost = bind == null ? null : bind.getHostAddress();
        handshake = HandshakeServer.start(
                bindHost, config.minRpcPort(), config.maxRpcPort(), HandshakeLimits.from(config), auth, this::onHandshake);
        store = metaProvider.create(config.metadataServer(), new MetadataContext() {
            @Override
            public EngineConfig config() {
                return config;
            }

            @Override
            public JsonObject call(InetSocketAddress peer, int type, JsonObject request, Duration t) {
                return HandshakeClient.call(peer, type, request, t, maxFrame, auth);
            }

            @Override
            public void segmentChanged(String name, SegmentDescriptor d) {
                Segment s = segments.get(name);
                if (s != null) {
                    s.descriptor(d); // requests route by the protocol it publishes, looked up per submit
                    ipc.segmentChanged(name, d);
                }
            }
        });
        localName = store.segmentName(hostname, handshake.port());
        devices = Devices.load();
        ipc = CudaIpc.create(config, devices);
        transports = InstalledTransports.create(providers, Context::new);
        long tick = Math.max(1_000_000L, Math.min(20_000_000L, timeout.toNanos() / 20));
        watchdog = new DeadlineWatchdog<>("mooncake4j-deadline", tick, TransferBatch::deadlineNanos, this::expire);
        localSegment = new Segment(localName, true, localDescriptor(), this);
        store.publish(localSegment.descriptor(), new InetSocketAddress(hostname, handshake.port()));
        LOG.info("Mooncake4j engine {} started: transport {} ({}), installed {}, metadata {}, listening on {}",
                localName, providers.get(0).protocol(), providers.get(0).getClass().getName(), transports,
                metaProvider.name(),
                bind == null
                        ? "every interface (set " + EngineConfig.TCP_BIND_ADDRESS + " to restrict)"
                        : bind.getHostAddress() + " (" + EngineConfig.TCP_BIND_ADDRESS + ")");
        if (auth.isEnabled()) {
            LOG.info("engine {}: every peer must prove the shared secret ({} or {}) on every connection",
                    localName, EngineConfig.AUTH_TOKEN, EngineConfig.AUTH_TOKEN_FILE);
        } else {
            LOG.warn("engine {} accepts anyone who reaches its ports, as Mooncake does: any peer may read and"
                    + " write its registered memory; set {} or {} to admit only peers that hold the secret"
                    + " (docs/security.md)", localName, EngineConfig.AUTH_TOKEN, EngineConfig.AUTH_TOKEN_FILE);
        }
    }

    private static MetadataStoreProvider selectMetadata(String uri) {
        List<MetadataStoreProvider> providers = ProviderLoader.load(MetadataStoreProvider.class);
        for (MetadataStoreProvider p : providers) {
            if (p.accepts(uri)) {
                return p;
            }
        }
        List<String> names = new ArrayList<>();
        providers.forEach(p -> names.add(p.name()));
        throw new MooncakeException(
                ErrorCode.CONFIGURATION,
                "no metadata store serves MC_METADATA_SERVER='" + uri + "'; known: " + names
                        + ". Use P2PHANDSHAKE, or add the plugin for this store to the classpath");
    }

    // ---------------------------------------------------------------- identity

    /** This engine's segment name, which peers pass to {@link #openSegment}. */
    public String localSegmentName() {
        return localName;
    }

    /** The primary transport's protocol: the one this engine publishes. */
    public String protocol() {
        return transports.primary().protocol();
    }

    /** The protocols of every installed transport, the primary one first. */
    public List<String> installedProtocols() {
        return transports.protocols();
    }

    /** The settings this engine was built with. */
    public EngineConfig config() {
        return config;
    }

    /**
     * Whether this engine has a shared secret ({@code MC_AUTH_TOKEN}): then every peer proved it on
     * every connection, and a {@link Notification}'s sender is the name its sender proved.
     */
    public boolean authenticatesPeers() {
        return auth.isEnabled();
    }

    /** The port of the handshake (RPC) server. */
    public int rpcPort() {
        return handshake.port();
    }

    // ---------------------------------------------------------------- memory

    /** Registers {@code [address, address + length)} at {@code location} ({@code cpu:0}, {@code cuda:1}, ...). */
    public MemoryRegion registerMemory(long address, long length, String location) {
        return registerMemory(address, length, MemoryLocation.parse(location));
    }

    /** Registers {@code [address, address + length)} at {@code location}. */
    public MemoryRegion registerMemory(long address, long length, MemoryLocation location) {
        return registerMemory(address, length, location, RegionAccess.REMOTE);
    }

    /**
     * Registers {@code [address, address + length)} at {@code location}; with {@link
     * RegionAccess#LOCAL_ONLY} it is never published to peers nor served to them, only used by this
     * engine's own transfers.
     */
    public MemoryRegion registerMemory(long address, long length, MemoryLocation location, RegionAccess access) {
        return registerMemory(List.of(new MemoryRegion(address, length, location)), access).get(0);
    }

    /** Registers a direct buffer's whole capacity as host memory; heap buffers are refused. */
    public MemoryRegion registerMemory(ByteBuffer buffer) {
        if (!buffer.isDirect()) {
            throw new MooncakeException(
                    ErrorCode.REGISTRATION,
                    "a heap ByteBuffer cannot be registered (the GC moves it): use ByteBuffer.allocateDirect or allocate()");
        }
        return registerMemory(NativeMemory.address(buffer), buffer.capacity(), MemoryLocation.CPU);
    }

    /**
     * Registers several regions, all or nothing: each region is registered with every installed
     * transport; when one refuses, those that accepted it (and the regions before it) are unregistered
     * again and its exception is thrown.
     */
    public List<MemoryRegion> registerMemory(List<MemoryRegion> regions) {
        return registerMemory(regions, RegionAccess.REMOTE);
    }

    /** Registers several regions with the same access, all or nothing. */
    public List<MemoryRegion> registerMemory(List<MemoryRegion> regions, RegionAccess access) {
        ensureOpen();
        List<MemoryRegion> resolved = new ArrayList<>(regions.size());
        for (MemoryRegion r : regions) {
            resolved.add(devices.resolve(r));
        }
        registry.register(resolved, access, transports);
        if (access == RegionAccess.REMOTE) {
            ipc.exportAll(resolved);
        }
        try {
            descriptorChanged();
        } catch (RuntimeException e) {
            // the store did not take it: peers must not see memory the caller was told is not registered
            for (MemoryRegion r : resolved) {
                ipc.forget(r);
                try {
                    transports.unregister(registry.remove(r.address()));
                } catch (RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            try {
                descriptorChanged();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        return List.copyOf(resolved);
    }

    /**
     * Unregisters the region starting at {@code address}. Peers can no longer reach it once this
     * starts; transfers already using it get up to the transfer timeout to end, then the transport
     * stops those still running (closes the connections that serve them) and gets {@value
     * #USERS_STOPPED_WAIT_SECONDS} s more.
     *
     * @throws MooncakeException REGISTRATION when no region starts there, or when transfers still
     *     use it after all that (the region stays unregistered; do not free the memory)
     */
    public void unregisterMemory(long address) {
        ensureOpen();
        RegisteredRegion removed = registry.remove(address);
        int left = drain(removed);
        if (left > 0) {
            throw new MooncakeException(
                    ErrorCode.REGISTRATION,
                    removed.region() + " is unregistered but " + left + " transfers still use it after "
                            + timeout + " and after the transport stopped its users: do not free it");
        }
    }

    /** Unregisters several regions. */
    public void unregisterMemory(Collection<MemoryRegion> regions) {
        for (MemoryRegion r : regions) {
            unregisterMemory(r.address());
        }
    }

    /**
     * Unregisters the region at {@code address} if it is still registered, also after {@link
     * #close()}; returns whether nothing can touch the memory any more (safe to unmap).
     */
    boolean unregisterForFree(long address) {
        RegisteredRegion removed;
        try {
            removed = registry.remove(address);
        } catch (MooncakeException e) {
            // unregistered earlier: free unless that left it in use
            RegisteredRegion stuck = undrained.get(address);
            if (stuck != null && stuck.awaitUnpinned(Duration.ofSeconds(USERS_STOPPED_WAIT_SECONDS))) {
                undrained.remove(address, stuck);
            }
            return stuck == null || stuck.pins() == 0;
        }
        return drain(removed) == 0;
    }

    /**
     * Unregisters the region of memory this engine allocated ({@link HostMemory}, {@link DeviceMemory})
     * and frees it with {@code free}; when transfers still use it, keeps it, counts it in {@code
     * leaked} and logs an error instead, so that no late byte lands in freed or reused memory.
     */
    void unregisterAndFree(MemoryRegion region, Runnable free, AtomicLong leaked) {
        boolean unused = false;
        try {
            unused = unregisterForFree(region.address());
        } finally {
            if (unused) {
                free.run();
            } else {
                LOG.error("{} is still used by transfers that did not stop; it is not freed ({} bytes kept so far) so"
                        + " that no late byte lands in freed or reused memory", region, leaked.addAndGet(region.length()));
            }
        }
    }

    /**
     * Waits for a removed region's pins; always tells the transport, which stops what still holds
     * pins; returns the pins left.
     */
    private int drain(RegisteredRegion removed) {
        try {
            if (!closed.get()) {
                descriptorChanged();
            }
        } catch (RuntimeException e) {
            LOG.warn("could not publish the descriptor without {}: {}", removed.region(), e.toString());
        }
        boolean drained = removed.awaitUnpinned(timeout);
        transports.unregister(removed); // never throws; stops the users still holding pins
        if (!drained && !removed.awaitUnpinned(Duration.ofSeconds(USERS_STOPPED_WAIT_SECONDS))) {
            undrained.put(removed.region().address(), removed);
        }
        ipc.forget(removed.region());
        devices.forget(removed.region()); // its addresses may be freed and reused
        return removed.pins();
    }

    /** Allocates page-aligned, zeroed host memory of any size and registers it. */
    public HostMemory allocate(long length) {
        return allocate(length, RegionAccess.REMOTE);
    }

    /** Allocates page-aligned, zeroed host memory of any size and registers it with {@code access}. */
    public HostMemory allocate(long length, RegionAccess access) {
        ensureOpen();
        if (length <= 0) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "allocation length must be positive: " + length);
        }
        long page = NativeMemory.pageSize();
        long rounded = (length + page - 1) / page * page;
        long address = NativeMemory.map(rounded);
        try {
            MemoryRegion region = registerMemory(address, rounded, MemoryLocation.CPU, access);
            return new HostMemory(this, region);
        } catch (RuntimeException e) {
            NativeMemory.unmap(address, rounded);
            throw e;
        }
    }

    /**
     * The device memory providers (GPU memory) this engine found when it started, available or not:
     * what {@link #allocate(long, MemoryLocation)} and registration at {@code cuda:N} use, e.g. to
     * count the GPUs before allocating on each.
     */
    public DeviceMemoryProviders deviceProviders() {
        return devices.providers();
    }

    /**
     * Allocates {@code length} bytes of device memory on {@code location} ({@code cuda:N}) and
     * registers it there; for host memory use {@link #allocate(long)}.
     *
     * @throws MooncakeException REGISTRATION naming what to add when no GPU library or device serves
     *     {@code location}; INVALID_ARGUMENT for a length that is not positive or a host location
     */
    public DeviceMemory allocate(long length, MemoryLocation location) {
        ensureOpen();
        if (length <= 0) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "allocation length must be positive: " + length);
        }
        if (!location.isCuda()) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT,
                    "allocate(length, location) is for device memory (cuda:N), not " + location
                            + ": use allocate(length) for host memory");
        }
        DeviceAllocation allocation = devices.allocate(location, length);
        try {
            MemoryRegion region = registerMemory(allocation.address(), allocation.length(), location);
            return new DeviceMemory(this, region, allocation);
        } catch (RuntimeException e) {
            allocation.close();
            throw e;
        }
    }

    private void descriptorChanged() {
        Segment local = localSegment;
        if (local != null) {
            synchronized (publishLock) { // the last descriptor published is the latest one built
                SegmentDescriptor d = localDescriptor();
                local.descriptor(d);
                store.publish(d, new InetSocketAddress(hostname, handshake.port()));
            }
        }
    }

    /** The local segment's current descriptor. */
    public SegmentDescriptor localDescriptor() {
        JsonObject extra = new JsonObject();
        transports.describe(extra);
        ipc.describe(extra);
        extra.addProperty("timestamp", Long.toString(System.currentTimeMillis()));
        List<BufferDescriptor> buffers = new ArrayList<>();
        for (RegisteredRegion r : registry.snapshot()) {
            if (!r.isRemote()) {
                continue; // LOCAL_ONLY: peers must not even learn where it is
            }
            MemoryRegion m = r.region();
            buffers.add(new BufferDescriptor(
                    m.location().toString(), m.address(), m.length(), ipc.bufferFields(m, r.transportFields())));
        }
        return new SegmentDescriptor(localName, protocol(), buffers, extra);
    }

    // ---------------------------------------------------------------- segments

    /**
     * Opens a segment by name: a peer's ({@code host:port} in P2P mode) or this engine's own.
     *
     * @throws MooncakeException SEGMENT_NOT_FOUND when the peer cannot be reached
     */
    public Segment openSegment(String name) {
        ensureOpen();
        if (name == null || name.isBlank()) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "segment name is empty: pass the peer's host:port");
        }
        if (name.equals(localName)) {
            return localSegment;
        }
        Segment s = segments.get(name);
        if (s != null) {
            return s;
        }
        Segment fetched = new Segment(name, false, fetch(name), this);
        fetched.host(store); // now, so that transfers to an open segment never wait for the store
        Segment raced = segments.putIfAbsent(name, fetched);
        return raced != null ? raced : fetched;
    }

    private SegmentDescriptor fetch(String name) {
        return store.fetch(name, handshakeTimeout);
    }

    /** Why no installed transport reaches a segment that publishes {@code d.protocol()}, and what to do. */
    private String unreachable(SegmentDescriptor d) {
        String installed = config.get(EngineConfig.INSTALLED_TRANSPORTS);
        return "segment " + d.name() + " publishes protocol '" + d.protocol() + "' but this engine installed only "
                + transports + ": put the '" + d.protocol() + "' transport plugin on this process's classpath and"
                + " make sure " + EngineConfig.INSTALLED_TRANSPORTS + " includes it (now "
                + (installed == null ? "unset: every available auto-selectable transport" : "'" + installed + "'")
                + "), or have the peer publish one of " + transports + " (" + EngineConfig.PROTOCOL + ")";
    }

    /** Re-fetches a segment's descriptor now (the engine also does so when a request needs it). */
    public Segment refreshSegment(Segment segment) {
        ensureOpen();
        if (!segment.isLocal()) {
            SegmentDescriptor d = fetch(segment.name());
            segment.descriptor(d);
            segment.host(store);
            ipc.segmentChanged(segment.name(), d);
        }
        return segment;
    }

    /**
     * Connects to a segment up front so the first transfer pays no connection cost. Idempotent.
     *
     * @throws MooncakeException TRANSPORT_UNAVAILABLE when no installed transport speaks the
     *     segment's protocol
     */
    public void warmupSegment(String name) {
        ensureOpen();
        if (name == null || name.isEmpty() || name.equals(localName)) {
            return;
        }
        SegmentDescriptor d = openSegment(name).descriptor();
        int t = transports.indexOf(d.protocol());
        if (t < 0) {
            throw new MooncakeException(ErrorCode.TRANSPORT_UNAVAILABLE, unreachable(d));
        }
        transports.get(t).warmup(d);
    }

    // ---------------------------------------------------------------- transfers

    /** A new empty batch that holds up to {@code capacity} requests. */
    public TransferBatch newBatch(int capacity) {
        ensureOpen();
        return new TransferBatch(this, capacity);
    }

    /** Submits the requests as one batch. */
    public TransferBatch submit(List<TransferRequest> requests) {
        TransferBatch b = newBatch(Math.max(1, requests.size()));
        for (TransferRequest r : requests) {
            b.add(r);
        }
        return b.submit();
    }

    /** Reads synchronously; throws TRANSFER_FAILED with the status and reason unless it completed. */
    public void read(Segment segment, long localAddress, long remoteAddress, long length) {
        transferSync(Opcode.READ, segment, localAddress, remoteAddress, length);
    }

    /** Writes synchronously; throws TRANSFER_FAILED with the status and reason unless it completed. */
    public void write(Segment segment, long localAddress, long remoteAddress, long length) {
        transferSync(Opcode.WRITE, segment, localAddress, remoteAddress, length);
    }

    /**
     * Copies {@code src.remaining()} bytes from a Java buffer (heap or direct) into memory registered
     * with this engine, host or device, starting at {@code address}, advancing {@code src}'s position;
     * returns once the bytes are in place. This is how to fill GPU memory ({@code cuda:N}) without a GPU
     * library in your own code: device memory is written through a host staging region of this engine
     * (allocated on first use, never published) and its device copier, 4 MiB at a time; host memory is
     * copied directly. One staged copy runs at a time.
     *
     * @throws MooncakeException INVALID_ARGUMENT when the range is not inside one region registered
     *     with this engine (nothing is copied); TRANSFER_FAILED when a device copy did not complete
     *     within the transfer timeout (bytes before the failed piece are in place); CLOSED
     */
    public void copyIn(long address, ByteBuffer src) {
        ensureOpen();
        localCopies.copy(Opcode.WRITE, address, src);
    }

    /**
     * Copies {@code dst.remaining()} bytes of memory registered with this engine, host or device,
     * starting at {@code address}, into a Java buffer, advancing its position; the counterpart of
     * {@link #copyIn}.
     *
     * @throws MooncakeException as {@link #copyIn} does
     */
    public void copyOut(long address, ByteBuffer dst) {
        ensureOpen();
        localCopies.copy(Opcode.READ, address, dst);
    }

    private void transferSync(Opcode op, Segment segment, long local, long remote, long length) {
        TransferBatch b = newBatch(1).add(op, segment, local, remote, length).submit().join();
        TransferStatus st = b.status(0);
        if (st != TransferStatus.COMPLETED) {
            throw new MooncakeException(
                    ErrorCode.TRANSFER_FAILED,
                    op + " of " + length + " bytes " + (op == Opcode.READ ? "from " : "to ") + segment.name()
                            + " at 0x" + Long.toHexString(remote) + " ended " + st
                            + (b.failureReason(0) == null ? "" : ": " + b.failureReason(0)));
        }
    }

    void submit(TransferBatch b) {
        ensureOpen();
        long deadline = System.nanoTime() + timeoutNanos;
        int e = b.markSubmitted(deadline);
        if (e < 0) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT, "batch already submitted: reset() it once it is done, or create a new one");
        }
        // The batch cannot complete before releaseHold below, so nothing here races its waiters.
        try {
            submit(b, e, deadline);
        } catch (RuntimeException | Error ex) {
            // nothing was handed to a transport yet (submitTo does not throw): end what is pending
            for (int i = 0; i < b.size(); i++) { // some may have ended already: fail() skips those
                b.fail(b.ledger(), i, TransferStatus.FAILED, "submit failed: " + ex, e);
            }
            throw ex;
        } finally {
            b.releaseHold(e);
        }
    }

    private void submit(TransferBatch b, int e, long deadline) {
        int n = b.size();
        Map<Segment, int[]> groups = null;
        Segment single = null;
        int[] singleIdx = null; // stays null while the single segment's requests are 0, 1, 2, ...
        int singleCount = 0;
        Map<Segment, Boolean> refreshed = null;
        Segment routed = null; // the last segment routed, and its transport: most batches have one
        int routedTo = -1;
        RoundPins pins = null; // the regions of this round's same-process requests, pinned once each
        DeviceCopyRound gpu = null; // this round's same-process requests on GPU memory
        try {
            for (int i = 0; i < n; i++) {
                Segment s = b.segment(i);
                String problem = validate(b, i, s);
                if (problem == null && s.isLocal()) {
                    if (pins == null) {
                        pins = new RoundPins(registry);
                    }
                    gpu = copyLocally(b, i, e, pins, gpu);
                    continue;
                }
                if (problem == null) {
                    problem = pinLocal(b, i);
                }
                BufferDescriptor buffer = null;
                if (problem == null) {
                    buffer = s.descriptor().bufferContaining(b.remote(i), b.length(i));
                    if (buffer == null) {
                        if (refreshed == null) {
                            refreshed = new IdentityHashMap<>();
                        }
                        if (refreshed.putIfAbsent(s, Boolean.TRUE) == null) {
                            try {
                                refreshSegment(s);
                                routed = null;
                            } catch (MooncakeException ex) {
                                problem = "segment " + s.name() + " could not be re-fetched: " + ex.getMessage();
                            }
                        }
                        buffer = problem == null ? s.descriptor().bufferContaining(b.remote(i), b.length(i)) : null;
                        if (problem == null && buffer == null) {
                            problem = "remote range [0x" + Long.toHexString(b.remote(i)) + ", +" + b.length(i)
                                    + ") lies in no single buffer of segment " + s.name() + " " + s.descriptor().buffers();
                        }
                    }
                    if (problem == null) { // a same-host peer's GPU buffer mapped here: the copier moves it
                        IpcMapping mapped = ipc.pin(s.name(), s.descriptor(), buffer, b.length(i));
                        if (mapped != null) {
                            gpu = copyOverIpc(b, i, e, gpu, mapped);
                            continue;
                        }
                    }
                    if (problem == null && s != routed) {
                        routed = s;
                        routedTo = transports.indexOf(s.descriptor().protocol());
                    }
                    if (problem == null && routedTo < 0) {
                        problem = unreachable(s.descriptor());
                    }
                }
                if (problem != null) {
                    b.endLocally(i, TransferStatus.INVALID, problem, e);
                    continue;
                }
                b.remoteBuffer(i, buffer);
                if (single == null || single == s) {
                    single = s;
                    if (singleIdx == null && singleCount != i) {
                        singleIdx = new int[n];
                        for (int k = 0; k < singleCount; k++) {
                            singleIdx[k] = k;
                        }
                    }
                    if (singleIdx != null) {
                        singleIdx[singleCount] = i;
                    }
                    singleCount++;
                } else {
                    if (groups == null) {
                        groups = new IdentityHashMap<>();
                    }
                    int[] g = groups.computeIfAbsent(s, x -> new int[n + 1]);
                    g[1 + g[0]++] = i;
                }
            }
            b.deviceCopiesOnly(gpu != null && single == null);
            RoundPins walked = pins;
            pins = null; // from here on the round's copies, or this line, release them
            if (gpu != null) {
                gpu.start(devices, walked); // the round's pins are held until its copies report
            } else if (walked != null) {
                walked.releaseAfter(0);
            }
        } finally {
            if (pins != null) { // the walk failed before the round's copies started
                pins.releaseAfter(0);
            }
        }
        if (single == null) {
            if (gpu != null) { // only device copies: tracked too, so they end by the deadline and close() cuts them short
                track(b, new SegmentSubmission(b, null, 0, e, deadline, DEVICE_COPIES_ONLY));
            }
            return;
        }
        SegmentSubmission first = new SegmentSubmission(b, singleIdx, singleCount, e, deadline, route(single));
        if (groups == null) {
            if (track(b, first)) {
                submitTo(single, first);
            }
        } else {
            SegmentSubmission[] subs = new SegmentSubmission[1 + groups.size()];
            Segment[] targets = new Segment[subs.length];
            subs[0] = first;
            targets[0] = single;
            int k = 1;
            for (Map.Entry<Segment, int[]> g : groups.entrySet()) {
                int[] idx = g.getValue();
                subs[k] = new SegmentSubmission(
                        b, Arrays.copyOfRange(idx, 1, 1 + idx[0]), idx[0], e, deadline, route(g.getKey()));
                targets[k++] = g.getKey();
            }
            if (track(b, subs)) {
                for (int j = 0; j < subs.length; j++) {
                    submitTo(targets[j], subs[j]);
                }
            }
        }
    }

    /** The installed transport for a segment whose requests passed validation (so there is one). */
    private int route(Segment s) {
        return transports.indexOf(s.descriptor().protocol());
    }

    /**
     * Publishes the round's submissions and has the watchdog track the batch; false if it was
     * cancelled meanwhile. When the engine closed during the submission (its close may not have seen
     * this round), the round is cancelled here: one of the two always does.
     */
    private boolean track(TransferBatch b, Object work) {
        b.watchdogSlot = watchdog.add(b);
        if (!b.publishInflight(work)) {
            watchdog.remove(b.watchdogSlot, b); // cannot happen: nothing claims a round being submitted
            return false;
        }
        if (closed.get()) {
            SegmentSubmission[] subs = claim(b, work, TransferStatus.CANCELED, "engine closed");
            if (subs != null) { // no transport saw them: nothing to abort, and nothing will report
                for (SegmentSubmission sub : subs) {
                    for (int j = 0; j < sub.size(); j++) {
                        sub.fail(j, TransferStatus.CANCELED, "engine closed");
                    }
                }
                b.signalDone(subs[0].epoch());
            }
            return false;
        }
        return true;
    }

    private void submitTo(Segment target, SegmentSubmission sub) {
        if (sub.transport() < 0) { // the segment was re-fetched meanwhile and now publishes another protocol
            for (int j = 0; j < sub.size(); j++) {
                sub.fail(j, TransferStatus.INVALID, unreachable(target.descriptor()));
            }
            return;
        }
        Transport transport = transports.get(sub.transport());
        try {
            transport.submit(target.descriptor(), sub);
        } catch (RuntimeException ex) {
            LOG.warn("transport {} threw from submit", transport.protocol(), ex);
            for (int j = 0; j < sub.size(); j++) {
                sub.fail(j, TransferStatus.FAILED, "transport error: " + ex);
            }
        }
    }

    /** Returns why request i cannot be sent, or null. */
    private String validate(TransferBatch b, int i, Segment s) {
        long len = b.length(i);
        if (s.owner() != this) {
            return "segment " + s.name() + " was opened by another engine";
        }
        if (len <= 0) {
            return "length must be positive, got " + len;
        }
        if (Long.compareUnsigned(b.local(i) + len, b.local(i)) <= 0
                || Long.compareUnsigned(b.remote(i) + len, b.remote(i)) <= 0) {
            return "address + length overflows";
        }
        return null;
    }

    /** Pins request i's local memory until its transport reports the last part; returns why it cannot, or null. */
    private String pinLocal(TransferBatch b, int i) {
        RegisteredRegion pin = registry.pinRegion(b.local(i), b.length(i));
        if (pin == null) {
            return notRegistered(b, i);
        }
        b.pin(i, pin);
        return null;
    }

    private static String notRegistered(TransferBatch b, int i) {
        return "local range [0x" + Long.toHexString(b.local(i)) + ", +" + b.length(i)
                + ") is not inside one registered region: register it with registerMemory first";
    }

    /**
     * A valid request to this engine's own segment, both sides pinned for the round by {@code pins}:
     * host memory is copied now; a request with GPU memory on either side joins the round's device
     * copy (returned, created on the first one). The rare branches are methods of their own.
     */
    private DeviceCopyRound copyLocally(TransferBatch b, int i, int e, RoundPins pins, DeviceCopyRound gpu) {
        long len = b.length(i);
        int local = pins.pin(b.local(i), len);
        int target = local < 0 ? -1 : pins.pin(b.remote(i), len);
        if (target < 0) {
            endUnregistered(b, i, e, local < 0);
            return gpu;
        }
        boolean fromGpu = pins.isCuda(local);
        if (!fromGpu && !pins.isCuda(target)) {
            copyHost(b, i, e);
            return gpu;
        }
        DeviceCopyRound round = gpu != null ? gpu : new DeviceCopyRound(b, e);
        round.add(i, pins.location(fromGpu ? local : target));
        return round;
    }

    /** Request i to this engine's own segment lies outside its registered memory on one side: INVALID. */
    private static void endUnregistered(TransferBatch b, int i, int e, boolean localSide) {
        b.endLocally(i, TransferStatus.INVALID, localSide ? notRegistered(b, i) : "range [0x" + Long.toHexString(b.remote(i))
                + ", +" + b.length(i) + ") is not inside one registered region of the local segment", e);
    }

    /** Copies request i, host memory on both sides of this engine's own segment, now. */
    private static void copyHost(TransferBatch b, int i, int e) {
        if (b.opcode(i) == Opcode.WRITE) {
            NativeMemory.copy(b.remote(i), b.local(i), b.length(i));
        } else {
            NativeMemory.copy(b.local(i), b.remote(i), b.length(i));
        }
        b.endLocally(i, TransferStatus.COMPLETED, null, e);
    }

    /**
     * A request to a peer on this host whose remote buffer is GPU memory mapped here ({@code mapped},
     * pinned): it joins the round's device copy on the mapping's device, as a same-process one does.
     */
    private DeviceCopyRound copyOverIpc(TransferBatch b, int i, int e, DeviceCopyRound gpu, IpcMapping mapped) {
        DeviceCopyRound round = gpu != null ? gpu : new DeviceCopyRound(b, e);
        round.addMapped(i, mapped.localAddress(b.remote(i)), mapped, mapped.region().location());
        return round;
    }

    /** The batch's round completed (the batch claimed its in-flight work): stop tracking it. */
    void untrack(TransferBatch b) {
        watchdog.remove(b.watchdogSlot, b);
    }

    private void expire(TransferBatch b) {
        Object work = b.inflight();
        long deadline = work instanceof SegmentSubmission ? ((SegmentSubmission) work).deadlineNanos()
                : work instanceof SegmentSubmission[] ? ((SegmentSubmission[]) work)[0].deadlineNanos()
                : Long.MAX_VALUE;
        if (System.nanoTime() - deadline >= 0) { // this round's deadline, not an earlier one's
            SegmentSubmission[] subs = claim(b, work, TransferStatus.TIMEOUT,
                    "deadline of " + timeout.toMillis() + " ms (MC_TRANSFER_TIMEOUT) passed");
            if (subs != null) {
                // the deadline thread never calls into a transport: a slow abort delays no other deadline
                subs[0].batch().signalDone(subs[0].epoch());
                completions.execute(() -> abort(subs));
            }
        }
    }

    void cancel(TransferBatch b, TransferStatus status, String reason) {
        cancel(b, b.inflight(), status, reason);
    }

    /**
     * Ends the requests of the round whose in-flight work is {@code work} with {@code status}, has
     * the transports drop them (without waiting: {@link Transport#abort} returns at once) and wakes
     * the batch's waiters. The local memory stays pinned until each transport reported every part it
     * issued.
     */
    private void cancel(TransferBatch b, Object work, TransferStatus status, String reason) {
        SegmentSubmission[] subs = claim(b, work, status, reason);
        if (subs != null) {
            abortAndSignal(subs);
        }
    }

    /**
     * Takes the round's work from its batch (unless it completed or was cancelled already, or is still
     * being submitted: then the submitter cancels it if the engine closed) and ends its requests with
     * {@code status}; returns the round's submissions, or null.
     */
    private SegmentSubmission[] claim(TransferBatch b, Object work, TransferStatus status, String reason) {
        if (work == TransferBatch.SUBMITTING || !b.claimInflight(work)) {
            return null;
        }
        untrack(b);
        SegmentSubmission[] subs = work instanceof SegmentSubmission
                ? new SegmentSubmission[] {(SegmentSubmission) work}
                : (SegmentSubmission[]) work;
        for (SegmentSubmission sub : subs) {
            sub.markAborted();
        }
        // every request of the round: the transports' parts, and same-process GPU copies still on the
        // device, whose pins stay until the copier reports
        b.endPending(status, reason, subs[0].epoch());
        return subs;
    }

    private void abortAndSignal(SegmentSubmission[] subs) {
        abort(subs);
        subs[0].batch().signalDone(subs[0].epoch());
    }

    private void abort(SegmentSubmission[] subs) {
        for (SegmentSubmission sub : subs) {
            if (sub.transport() == DEVICE_COPIES_ONLY) {
                continue; // the copier reports on its own; the round's pins wait for it
            }
            Transport t = transports.get(sub.transport());
            try {
                t.abort(sub);
            } catch (RuntimeException ex) {
                LOG.warn("transport {} abort failed", t.protocol(), ex);
            }
        }
    }

    /** Completes a batch's future on the completion threads: user stages never run on a transport thread. */
    void completeLater(CompletableFuture<TransferBatch> f, TransferBatch b) {
        completions.complete(f, b);
    }

    // ---------------------------------------------------------------- notifications

    /** Sends a small message to a segment's engine; throws when it is not delivered. */
    public void sendNotification(String segmentName, String message) {
        ensureOpen();
        JsonObject reply = HandshakeClient.call(store.rpcAddress(segmentName), HandshakeFrame.NOTIFY,
                HandshakeMessages.notify(localName, message), handshakeTimeout, maxFrame, auth);
        if (!HandshakeMessages.isNotifyOk(reply)) {
            throw new MooncakeException(ErrorCode.METADATA, "segment " + segmentName + " refused the notification: " + reply);
        }
    }

    /** Takes every notification received since the last call, oldest first. */
    public List<Notification> pollNotifications() {
        return notifications.poll();
    }

    /**
     * Waits up to {@code wait} for a notification, then takes every one received, oldest first; an
     * empty list when none came in time.
     */
    public List<Notification> pollNotifications(Duration wait) throws InterruptedException {
        ensureOpen();
        return notifications.poll(wait);
    }

    /**
     * The engine's counters and gauges for monitoring, by name: {@code handshake.*} (the handshake
     * server: frames served and rejected, connections accepted, refused, closed silent or
     * unauthenticated, open now), {@code notifications.refused}, {@code cuda_ipc.*} (GPU memory moved
     * through CUDA IPC with peers on this host), and each installed transport's own under its protocol
     * ({@code tcp.served_requests}, {@code efa.<nic>.bytes}, ...). Keys are listed in
     * docs/operations.md ("Counters"). A snapshot: cheap, never blocking, safe from any thread, also
     * after {@link #close()} (the final figures).
     */
    public Map<String, Long> counters() {
        Map<String, Long> c = new TreeMap<>();
        handshake.counters().forEach((k, v) -> c.put("handshake." + k, v));
        c.put("notifications.refused", notifications.refused());
        ipc.counters().forEach((k, v) -> c.put("cuda_ipc." + k, v));
        for (String protocol : transports.protocols()) {
            transports.get(transports.indexOf(protocol)).counters().forEach((k, v) -> c.put(protocol + "." + k, v));
        }
        return c;
    }

    private JsonObject onHandshake(int type, JsonObject request, InetSocketAddress remote, String peer) {
        switch (type) {
            case HandshakeFrame.METADATA:
                return localDescriptor().toJson();
            case HandshakeFrame.NOTIFY:
                return notifications.accept(HandshakeMessages.parseNotify(request), remote, peer);
            case HandshakeFrame.PROBE:
                return HandshakeMessages.probeOk();
            case HandshakeFrame.CONNECTION:
                return onConnectionRequest(request);
            default:
                throw new IllegalArgumentException("unknown handshake type " + type);
        }
    }

    /** Hands a Connection request to the transport named by its {@code protocol} (none: the primary). */
    private JsonObject onConnectionRequest(JsonObject request) {
        InstalledTransports ts = transports;
        if (ts == null) {
            return HandshakeMessages.connectionRefused("engine is starting");
        }
        var p = request.get("protocol");
        if (p == null || !p.isJsonPrimitive()) {
            return ts.primary().onConnectionRequest(request);
        }
        int t = ts.indexOf(p.getAsString());
        return t < 0
                ? HandshakeMessages.connectionRefused("no transport for protocol '" + p.getAsString()
                        + "' is installed here (installed: " + ts + ")")
                : ts.get(t).onConnectionRequest(request);
    }

    // ---------------------------------------------------------------- lifecycle

    private void ensureOpen() {
        if (closed.get()) {
            throw new MooncakeException(ErrorCode.CLOSED, "transfer engine " + localName + " is closed");
        }
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
        return closed.get();
    }

    /**
     * Ends every transfer in flight CANCELED, stops every thread and closes every socket. Idempotent.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        if (watchdog != null) {
            // every status first, then the transports let go: dropping one batch's parts can never
            // make another batch's requests end otherwise than CANCELED
            List<SegmentSubmission[]> cancelled = new ArrayList<>();
            for (TransferBatch b : watchdog.active()) {
                SegmentSubmission[] subs = claim(b, b.inflight(), TransferStatus.CANCELED, "engine closed");
                if (subs != null) {
                    cancelled.add(subs);
                }
            }
            cancelled.forEach(this::abortAndSignal);
        }
        closeQuietly(watchdog);
        closeQuietly(transports);
        closeQuietly(devices); // waits (bounded) for same-process and IPC GPU copies in flight
        closeQuietly(localCopies); // frees its staging region, which no copy holds any more
        closeQuietly(ipc); // then unmaps the peers' buffers no copy holds any more
        closeQuietly(handshake);
        closeQuietly(store);
        completions.close();
        segments.clear();
        LOG.debug("engine {} closed", localName);
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (Exception e) {
            LOG.warn("closing {} failed", c, e);
        }
    }

    @Override
    public String toString() {
        return "TransferEngine[" + localName + ", " + (transports == null ? "?" : transports.toString()) + "]";
    }

    /** What one installed transport gets: its Connection handshakes name its protocol. */
    private final class Context implements TransportContext {
        private final String protocol;

        Context(String protocol) {
            this.protocol = protocol;
        }

        @Override
        public EngineConfig config() {
            return config;
        }

        @Override
        public String localHostname() {
            return hostname;
        }

        @Override
        public String localSegmentName() {
            return localName;
        }

        @Override
        public LocalMemory localMemory() {
            return registry;
        }

        @Override
        public InetAddress peerHost(String segmentName) {
            Segment s = segments.get(segmentName);
            return s != null ? s.host(store) : store.rpcAddress(segmentName).getAddress();
        }

        @Override
        public JsonObject connect(String segmentName, JsonObject request, Duration t) {
            if (!request.has("protocol")) {
                request.addProperty("protocol", protocol);
            }
            return HandshakeClient.call(store.rpcAddress(segmentName), HandshakeFrame.CONNECTION, request, t, maxFrame, auth);
        }

        @Override
        public PeerAuthenticator peerAuthenticator() {
            return auth;
        }

        @Override
        public DeviceMemoryProviders devices() {
            return devices.providers();
        }
    }
}
