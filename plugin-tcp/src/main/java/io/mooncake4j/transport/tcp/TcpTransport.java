package io.mooncake4j.transport.tcp;

import com.google.gson.JsonObject;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.PeerAuthenticator;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Submission;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Mooncake's TCP transport, wire compatible with Mooncake's TCP data protocol v1 and v2.
 *
 * <p>Target side: a {@link TcpServer} on {@code tcp_data_port} serves peers from registered
 * memory. Initiator side: per peer, {@code MC_TCP_LANES_PER_PEER} persistent connections ({@link
 * TcpLane}), opened lazily; requests longer than {@code MC_SLICE_SIZE} are striped across them and
 * many requests are in flight on each (protocol v2). A watchdog closes connections that stop moving
 * bytes in the middle of a request ({@code MC_TCP_STALL_TIMEOUT}); that is also how the parts of an
 * aborted batch still in flight to a dead peer end, since abort never closes a connection.
 *
 * <p>GPU memory ({@code cuda:N}) on either side is staged through pinned host buffers with
 * asynchronous copies pipelined with the socket I/O ({@link DevicePipe}), by the initiator for its
 * local side and by the target for its own; a device pointer never reaches a socket. Without a
 * device provider a request with local GPU memory ends INVALID, saying what to add.
 */
public final class TcpTransport implements Transport {
    private static final Logger LOG = LoggerFactory.getLogger(TcpTransport.class);
    static final String V1_GPU_REASON =
            "the peer's data server speaks tcp protocol v1 (tcp_proto_version < 2, an older Mooncake): GPU memory"
                    + " moves over tcp only with protocol v2 peers; stage it through a registered cpu:0 buffer";

    final TcpSettings settings;
    final TcpCounters counters = new TcpCounters();
    final DeviceStaging staging;
    private final TransportContext context;
    private final TcpServer server;
    private final Thread watchdog;
    private final Map<String, TcpPeer> peers = new ConcurrentHashMap<>();
    /**
     * The peer of each descriptor seen recently, by identity (descriptors are immutable and do not
     * override equals): resolving a peer from its descriptor parses the name and builds a key, which
     * would allocate on every submission. Cleared when it grows (descriptors are replaced on refresh).
     */
    private final Map<SegmentDescriptor, TcpPeer> byDescriptor = new ConcurrentHashMap<>();
    private static final int MAX_CACHED_DESCRIPTORS = 1024;
    /**
     * A batch of at most this many parts (and {@code MC_TCP_CALLER_RUN_BYTES}) is sent by the
     * submitting thread itself when its lane is idle and connected ({@link TcpLane#tryRunHere}): the
     * hand-off to the sender would cost more than sending it.
     */
    static final int CALLER_RUN_PARTS = 64;
    private final AtomicBoolean closed = new AtomicBoolean();

    /**
     * Starts the data server and the watchdog.
     *
     * @throws MooncakeException ({@code IO}) when the data port cannot be bound
     */
    public TcpTransport(TransportContext context) {
        this.context = context;
        this.settings = new TcpSettings(context.config());
        this.staging = new DeviceStaging(context.devices(), settings);
        try {
            this.server = new TcpServer(context.localMemory(), context.peerAuthenticator(), settings, counters, staging);
        } catch (IOException e) {
            throw new MooncakeException(
                    ErrorCode.IO,
                    "tcp transport: cannot listen on data port "
                            + settings.dataPort
                            + " ("
                            + TcpSettings.DATA_PORT
                            + "): "
                            + e.getMessage(),
                    e);
        }
        this.watchdog = new Thread(this::watch, "mc-tcp-watchdog-" + server.port());
        watchdog.setDaemon(true);
        try {
            watchdog.start();
        } catch (RuntimeException | Error e) {
            server.close(); // release what this constructor acquired
            throw e;
        }
        LOG.debug("tcp transport listening on port {} with {}", server.port(), settings);
    }

    @Override
    public String protocol() {
        return "tcp";
    }

    /** How data connections prove themselves ({@link PeerAuthenticator#OPEN} without a secret). */
    PeerAuthenticator peerAuthenticator() {
        return context.peerAuthenticator();
    }

    /** The port of the data server, as published in {@code tcp_data_port}. */
    public int dataPort() {
        return server.port();
    }

    /**
     * A snapshot of what this transport did: initiator parts, bytes and connections; the data
     * server's requests, rejected ranges, protocol errors, refused, evicted and timed-out connections;
     * and gauges of the data server's connections and staging memory. The keys and their meaning are
     * listed in docs/configuration.md ("Limits and defaults").
     */
    @Override
    public Map<String, Long> counters() {
        Map<String, Long> m = counters.snapshot();
        m.put("served_connections_open", (long) server.connectionCount());
        m.put("serving_threads", (long) server.busyThreads());
        m.put("staging_bytes", server.stagingBytes());
        m.put("gpu_staging_bytes", staging.pinnedBytes());
        return m;
    }

    /**
     * Closes the data server's connections whose requests still use {@code region}, so that they
     * release it (see {@link Transport#unregisterRegion}); the region is no longer pinnable.
     */
    @Override
    public void unregisterRegion(MemoryRegion region, RegionRegistration registration) {
        server.stopUsersOf(region);
    }

    boolean isClosed() {
        return closed.get();
    }

    @Override
    public void describe(JsonObject descriptor) {
        descriptor.addProperty("tcp_data_port", server.port());
        descriptor.addProperty("tcp_proto_version", TcpWire.PROTO_VERSION);
    }

    @Override
    public void submit(SegmentDescriptor peerDescriptor, Submission work) {
        try {
            submit0(peerDescriptor, work);
        } catch (RuntimeException e) {
            LOG.warn("tcp submit failed unexpectedly", e);
            failAll(work, TransferStatus.FAILED, "tcp submit failed: " + e);
        }
    }

    private void submit0(SegmentDescriptor peerDescriptor, Submission work) {
        if (closed.get()) {
            failAll(work, TransferStatus.CANCELED, "tcp transport closed");
            return;
        }
        TcpPeer peer;
        try {
            peer = peerFor(peerDescriptor);
        } catch (MooncakeException e) {
            failAll(work, TransferStatus.FAILED, e.getMessage());
            return;
        }
        long slice = settings.sliceSize;
        boolean any = false;
        long bytes = 0;
        long totalParts = 0;
        for (int i = 0, n = work.size(); i < n; i++) {
            if (work.localIsCuda(i)) {
                String refusal = peer.gpuRefusal();
                if (refusal != null) {
                    counters.partsFailed.increment();
                    work.fail(i, TransferStatus.INVALID, refusal);
                    continue;
                }
            }
            int parts = StripePlan.partsOf(work.length(i), slice);
            if (parts > 1) {
                work.expectParts(i, parts);
            }
            bytes += work.length(i);
            totalParts += parts;
            any = true;
        }
        if (!any) {
            return;
        }
        TcpLane[] lanes = peer.lanes;
        int start = peer.nextStart();
        long mask = StripePlan.laneMask(work, start, lanes.length, slice, peer.skipsLocalGpu());
        // a small batch: the other lanes' senders start first, then this thread sends one lane's share
        int here = settings.callerRunBytes > 0 && bytes <= settings.callerRunBytes && totalParts <= CALLER_RUN_PARTS
                ? Long.numberOfTrailingZeros(mask)
                : -1;
        for (int l = 0; l < lanes.length; l++) {
            if ((mask & (1L << l)) != 0 && l != here) {
                lanes[l].enqueue(work, start);
            }
        }
        if (here >= 0 && here < lanes.length && !lanes[here].tryRunHere(work, start, (int) totalParts, bytes)) {
            lanes[here].enqueue(work, start);
        }
    }

    /**
     * Drops the submission's parts not yet sent, on every lane, reporting them; returns at once. Parts
     * already in flight finish (their READ payloads are read and dropped) or fail with their
     * connection; no connection is closed, so other batches to the same peer are not disturbed. A
     * peer that stops answering is left to the stall watchdog ({@code MC_TCP_STALL_TIMEOUT}).
     */
    @Override
    public void abort(Submission work) {
        counters.aborts.increment();
        for (TcpPeer p : peers.values()) {
            for (TcpLane lane : p.lanes) {
                lane.abort(work);
            }
        }
    }

    /**
     * Opens every lane to the peer now.
     *
     * @throws MooncakeException ({@code IO}) naming the peer when a connection cannot be opened
     */
    @Override
    public void warmup(SegmentDescriptor peerDescriptor) {
        if (closed.get()) {
            throw new MooncakeException(ErrorCode.CLOSED, "tcp transport closed");
        }
        TcpPeer peer = peerFor(peerDescriptor);
        for (TcpLane lane : peer.lanes) {
            String failure = lane.connect();
            if (failure != null) {
                throw new MooncakeException(ErrorCode.IO, "tcp warmup of " + peer + ": " + failure);
            }
        }
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        watchdog.interrupt();
        server.close();
        List<TcpPeer> all;
        synchronized (peers) { // peerFor adds peers under this lock after checking closed
            all = new ArrayList<>(peers.values());
        }
        for (TcpPeer p : all) {
            for (TcpLane lane : p.lanes) {
                lane.close();
            }
        }
        staging.close(); // the lanes gave their pipes back; the served connections' come back as they end
        TcpServer.join(watchdog);
        LOG.debug("tcp transport on port {} closed; {}", server.port(), counters.snapshot());
    }

    /**
     * The peer's data server: its {@code tcp_data_port} on the host where the metadata store says it
     * lives ({@link TransportContext#peerHost}), never the segment name's host, which in etcd mode may
     * be any name ({@code MC_LOCAL_SERVER_NAME}).
     */
    private TcpPeer peerFor(SegmentDescriptor d) {
        TcpPeer cached = byDescriptor.get(d);
        if (cached != null) {
            return cached;
        }
        TcpPeer p = resolvePeer(d);
        if (byDescriptor.size() >= MAX_CACHED_DESCRIPTORS) {
            byDescriptor.clear();
        }
        byDescriptor.put(d, p);
        return p;
    }

    private TcpPeer resolvePeer(SegmentDescriptor d) {
        long port = d.longField("tcp_data_port", -1);
        if (port <= 0 || port > 65535) {
            throw new MooncakeException(
                    ErrorCode.SEGMENT_NOT_FOUND,
                    "segment '" + d.name() + "' publishes no valid tcp_data_port; is it a tcp peer?");
        }
        boolean v2 = d.longField("tcp_proto_version", 1) >= 2;
        InetAddress host = context.peerHost(d.name());
        String label = (host instanceof Inet6Address ? "[" + host.getHostAddress() + "]" : host.getHostAddress())
                + ":" + port;
        String key = label + '|' + (v2 ? 2 : 1);
        TcpPeer p = peers.get(key);
        if (p != null) {
            return p;
        }
        synchronized (peers) {
            if (closed.get()) {
                throw new MooncakeException(ErrorCode.CLOSED, "tcp transport closed");
            }
            return peers.computeIfAbsent(key, k -> new TcpPeer(
                    this, label, new InetSocketAddress(host, (int) port), v2, settings.lanesPerPeer));
        }
    }

    private void watch() {
        long period = Math.max(TimeUnit.MILLISECONDS.toNanos(50), settings.stallTimeoutNanos / 4);
        period = Math.min(period, TimeUnit.SECONDS.toNanos(1));
        while (!closed.get()) {
            try {
                TimeUnit.NANOSECONDS.sleep(period);
            } catch (InterruptedException e) {
                break;
            }
            long now = System.nanoTime();
            for (TcpPeer p : peers.values()) {
                for (TcpLane lane : p.lanes) {
                    check(lane.connection(), now);
                }
            }
            server.sweep(now);
        }
    }

    private void check(Watched w, long now) {
        if (w != null && w.busy() && now - w.lastProgress() > settings.stallTimeoutNanos) {
            counters.stalls.increment();
            w.kill("no progress for " + settings.stallTimeoutNanos / 1_000_000 + " ms");
        }
    }

    /**
     * Ends every request of a submission none of whose parts was issued. A request the engine ended
     * meanwhile (deadline, cancellation) is reported too: its memory stays pinned until it is, and
     * for one reported already (refused) {@code fail} is a no-op.
     */
    private void failAll(Submission work, TransferStatus status, String reason) {
        for (int i = 0, n = work.size(); i < n; i++) {
            if (!work.isDone(i)) {
                counters.partsFailed.increment();
            }
            work.fail(i, status, reason);
        }
    }
}
