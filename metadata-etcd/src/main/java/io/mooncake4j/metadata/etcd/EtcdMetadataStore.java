package io.mooncake4j.metadata.etcd;

import com.google.common.net.HostAndPort;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.MetadataContext;
import io.mooncake4j.spi.MetadataStore;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The etcd store. {@link #publish} writes {@code rpc_meta/<name>} and {@code ram/<name>} in one
 * transaction, both bound to this engine's lease, so a peer sees both or neither and both vanish
 * {@code MC_ETCD_LEASE_TTL} seconds after the engine dies. A keeper thread renews the lease every
 * third of the TTL; when etcd no longer knows the lease (it lost its data, or was unreachable for
 * longer than the TTL) or a publish did not reach it, the keeper publishes the last descriptor
 * again, once etcd answers. {@link #fetch} reads a peer's descriptor and watches it from then on.
 * Every call to etcd is bounded by {@code MC_ETCD_TIMEOUT}.
 */
final class EtcdMetadataStore implements MetadataStore {
    private static final Logger LOG = LoggerFactory.getLogger(EtcdMetadataStore.class);

    private final EtcdSettings settings;
    private final EtcdKeys keys;
    private final BoundedEtcd etcd;
    private final SegmentWatches watches;
    private final ScheduledExecutorService keeper;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final Object lock = new Object();
    // guarded by lock
    private long lease; // 0: none granted (or lost)
    private String name;
    private String rpcMeta;
    private String descriptor;
    private boolean pending; // the last publish may not be in etcd
    private boolean reachable = true;

    EtcdMetadataStore(EtcdSettings settings, MetadataContext context) {
        this.settings = settings;
        this.keys = new EtcdKeys(settings.clusterId);
        this.etcd = new BoundedEtcd(settings.endpoints, settings.timeout);
        this.watches = new SegmentWatches(etcd, keys, context);
        this.keeper = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "mooncake4j-etcd-lease");
            t.setDaemon(true);
            return t;
        });
        long period = Math.max(200, settings.leaseTtlSeconds * 1000 / 3);
        keeper.scheduleWithFixedDelay(this::keep, period, period, TimeUnit.MILLISECONDS);
    }

    /** {@code MC_LOCAL_SERVER_NAME} when set, else {@code host:port} of the handshake server. */
    @Override
    public String segmentName(String hostname, int rpcPort) {
        if (settings.localServerName != null) {
            return settings.localServerName;
        }
        String host = hostname.startsWith("[") && hostname.endsWith("]")
                ? hostname.substring(1, hostname.length() - 1) : hostname;
        try {
            return EtcdSettings.checkSegmentName(HostAndPort.fromParts(host, rpcPort).toString());
        } catch (IllegalArgumentException e) {
            throw new MooncakeException(ErrorCode.CONFIGURATION, "'" + hostname + "' is not a host name or IP:"
                    + " set MOONCAKE_LOCAL_HOSTNAME to this engine's address, or name it with "
                    + EtcdSettings.LOCAL_SERVER_NAME, e);
        }
    }

    /**
     * Writes the descriptor and the handshake address under this engine's lease.
     *
     * @throws MooncakeException {@code METADATA} when etcd did not take them in time; the keeper
     *     writes the last published descriptor again once etcd answers
     */
    @Override
    public void publish(SegmentDescriptor d, InetSocketAddress rpcAddress) {
        synchronized (lock) {
            ensureOpen();
            name = EtcdSettings.checkSegmentName(d.name());
            rpcMeta = EtcdKeys.rpcMetaValue(rpcAddress);
            descriptor = d.toJson().toString();
            pending = true;
            write();
            pending = false;
        }
    }

    private void write() {
        if (lease == 0) {
            lease = etcd.grant(settings.leaseTtlSeconds);
        }
        try {
            etcd.putAll(lease, keys.rpcMeta(name), rpcMeta, keys.segment(name), descriptor);
        } catch (MooncakeException e) {
            if (!BoundedEtcd.isLeaseNotFound(e)) {
                throw e;
            }
            lease = etcd.grant(settings.leaseTtlSeconds);
            etcd.putAll(lease, keys.rpcMeta(name), rpcMeta, keys.segment(name), descriptor);
        }
    }

    /** The keeper's tick: renews the lease, or publishes again what etcd may have lost. */
    private void keep() {
        boolean republished = false;
        synchronized (lock) {
            if (closed.get() || name == null) {
                return;
            }
            try {
                if (!pending && !etcd.keepAlive(lease)) {
                    LOG.warn("etcd no longer has lease {} of segment {} (expired, or etcd lost its data):"
                            + " publishing it again", Long.toHexString(lease), name);
                    lease = 0;
                    pending = true;
                }
                if (pending) {
                    write();
                    pending = false;
                    republished = true;
                }
                if (!reachable) {
                    reachable = true;
                    LOG.info("etcd {} answers again; segment {} is published", settings.endpoints, name);
                }
            } catch (RuntimeException e) {
                if (reachable && !closed.get()) {
                    reachable = false;
                    LOG.warn("cannot renew segment {} in etcd (its entries expire {} s after the last renewal);"
                            + " retrying: {}", name, settings.leaseTtlSeconds, e.getMessage());
                }
                return;
            }
        }
        if (republished) {
            watches.resync();
        }
    }

    /**
     * Reads a peer's descriptor and watches it from then on.
     *
     * @throws MooncakeException {@code SEGMENT_NOT_FOUND} when etcd has none under that name;
     *     {@code METADATA} when etcd fails, does not answer in time, or holds an unusable value
     */
    @Override
    public SegmentDescriptor fetch(String segmentName, Duration timeout) {
        ensureOpen();
        EtcdSettings.checkSegmentName(segmentName);
        String key = keys.segment(segmentName);
        BoundedEtcd.Read r = etcd.get(key, bound(timeout));
        if (r.value() == null) {
            throw notFound(segmentName, key);
        }
        SegmentDescriptor d = EtcdKeys.parseDescriptor(key, r.value());
        watches.watch(segmentName, r.revision() + 1);
        return d;
    }

    /**
     * Where the segment's handshake server listens, from its {@code rpc_meta} entry.
     *
     * @throws MooncakeException {@code SEGMENT_NOT_FOUND} when there is none or its host does not
     *     resolve; {@code METADATA} when etcd fails or does not answer in time
     */
    @Override
    public InetSocketAddress rpcAddress(String segmentName) {
        ensureOpen();
        EtcdSettings.checkSegmentName(segmentName);
        String key = keys.rpcMeta(segmentName);
        BoundedEtcd.Read r = etcd.get(key, settings.timeout);
        if (r.value() == null) {
            throw notFound(segmentName, key);
        }
        InetSocketAddress a = EtcdKeys.parseRpcMeta(key, r.value());
        InetSocketAddress resolved = new InetSocketAddress(a.getHostString(), a.getPort());
        if (resolved.isUnresolved()) {
            throw new MooncakeException(ErrorCode.SEGMENT_NOT_FOUND, "segment '" + segmentName + "' listens on host '"
                    + a.getHostString() + "' (etcd key " + key + "), which does not resolve; check DNS or"
                    + " MOONCAKE_LOCAL_HOSTNAME on that peer");
        }
        return resolved;
    }

    private MooncakeException notFound(String segmentName, String key) {
        return new MooncakeException(ErrorCode.SEGMENT_NOT_FOUND, "no segment '" + segmentName + "' in etcd "
                + settings.endpoints + " (key " + key + " is absent): is that peer running, with the same"
                + " MC_METADATA_SERVER and " + EtcdSettings.CLUSTER_ID + "? Its entries expire "
                + "when it dies without withdrawing them");
    }

    private Duration bound(Duration timeout) {
        return timeout == null || timeout.compareTo(settings.timeout) > 0 ? settings.timeout : timeout;
    }

    /** Withdraws this engine's entries (revokes its lease) and stops watching. Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        keeper.shutdownNow();
        synchronized (lock) {
            if (lease != 0) {
                try {
                    etcd.revoke(lease);
                } catch (RuntimeException e) {
                    LOG.warn("cannot withdraw segment {} from etcd; its entries expire within {} s: {}",
                            name, settings.leaseTtlSeconds, e.getMessage());
                }
                lease = 0;
            }
        }
        watches.close();
        etcd.close();
    }

    private void ensureOpen() {
        if (closed.get()) {
            throw new MooncakeException(ErrorCode.CLOSED, "the etcd metadata store is closed");
        }
    }

    @Override
    public String toString() {
        return "EtcdMetadataStore" + settings.endpoints + (closed.get() ? "[closed]" : "");
    }
}
