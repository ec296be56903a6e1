package io.mooncake4j.metadata.etcd;

import io.etcd.jetcd.Watch;
import io.etcd.jetcd.watch.WatchEvent;
import io.etcd.jetcd.watch.WatchResponse;
import io.mooncake4j.spi.MetadataContext;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One etcd watch per segment this engine fetched: when the peer publishes a new descriptor (it
 * registered memory, or restarted under the same name) the engine's open segment is updated at
 * once, instead of on the next request that misses.
 */
final class SegmentWatches implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SegmentWatches.class);

    private final BoundedEtcd etcd;
    private final EtcdKeys keys;
    private final MetadataContext context;
    private final Map<String, Watch.Watcher> watchers = new ConcurrentHashMap<>();
    private volatile boolean closed;

    SegmentWatches(BoundedEtcd etcd, EtcdKeys keys, MetadataContext context) {
        this.etcd = etcd;
        this.keys = keys;
        this.context = context;
    }

    /** Watches {@code name}'s descriptor from {@code fromRevision} on, unless it is watched already. */
    void watch(String name, long fromRevision) {
        if (closed) {
            return;
        }
        watchers.computeIfAbsent(name, n -> etcd.watch(keys.segment(n), fromRevision,
                r -> onEvents(n, r), e -> onError(n, e)));
    }

    private void onEvents(String name, WatchResponse response) {
        for (WatchEvent e : response.getEvents()) {
            if (e.getEventType() != WatchEvent.EventType.PUT) {
                continue; // withdrawn or expired: transfers to it fail on their own; a re-fetch says so
            }
            String key = keys.segment(name);
            try {
                context.segmentChanged(name,
                        EtcdKeys.parseDescriptor(key, e.getKeyValue().getValue().toString(StandardCharsets.UTF_8)));
            } catch (RuntimeException ex) {
                LOG.warn("ignoring the new value of {}: {}", key, ex.getMessage());
            }
        }
    }

    private void onError(String name, Throwable error) {
        // jetcd gives up on a watch only for good (e.g. its revision was compacted): drop it so that
        // the next fetch of the segment watches it again
        Watch.Watcher w = watchers.remove(name);
        if (w != null) {
            w.close();
        }
        LOG.debug("watch of segment {} ended: {}", name, error.toString());
    }

    /**
     * Re-reads every watched segment and watches it again from now: after etcd lost its data its
     * revisions restart, and a watch resumed from an older revision would miss the new values.
     */
    void resync() {
        for (String name : List.copyOf(watchers.keySet())) {
            Watch.Watcher w = watchers.remove(name);
            if (w != null) {
                w.close();
            }
            String key = keys.segment(name);
            try {
                BoundedEtcd.Read r = etcd.get(key, etcd.timeout());
                if (r.value() != null) {
                    context.segmentChanged(name, EtcdKeys.parseDescriptor(key, r.value()));
                }
                watch(name, r.revision() + 1);
            } catch (RuntimeException e) {
                LOG.debug("cannot watch {} again yet: {}", key, e.getMessage());
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Watch.Watcher w : watchers.values()) {
            w.close();
        }
        watchers.clear();
    }
}
