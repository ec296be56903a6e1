package io.mooncake4j.internal;

import io.mooncake4j.MooncakeException;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.DeviceIpcHandle;
import io.mooncake4j.spi.DeviceIpcMapping;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One peer segment's CUDA IPC state: whether it is on this host (by the descriptor it publishes),
 * its GPU buffers mapped here (each opened once, on first use), and whether IPC failed with it
 * (then it is never tried again for this segment: its requests go to the network transport). A new
 * descriptor keeps the mappings of the buffers it still shows (same address, length and handle) and
 * retires the others.
 */
final class IpcPeer {
    private final String segment;
    private final CudaIpc owner;
    private final Map<Key, IpcMapping> open = new HashMap<>(); // guarded by this
    private volatile State state = new State(null, false, Map.of());
    private boolean failed; // guarded by this; sticky
    private boolean closed; // guarded by this

    /** What the requests of one descriptor need, read without locking. */
    private record State(SegmentDescriptor descriptor, boolean usable, Map<BufferDescriptor, IpcMapping> mappings) {}

    /** What identifies a peer buffer's memory across descriptors. */
    private record Key(long address, long length, DeviceIpcHandle handle) {}

    IpcPeer(String segment, CudaIpc owner) {
        this.segment = segment;
        this.owner = owner;
    }

    /** The buffer's mapping, pinned, or null when the request goes to the network transport. */
    IpcMapping pin(SegmentDescriptor d, BufferDescriptor b) {
        State s = state;
        if (s.descriptor == d) {
            if (!s.usable) {
                return null;
            }
            IpcMapping m = s.mappings.get(b);
            if (m != null && m.tryPin()) {
                return m;
            }
        }
        synchronized (this) {
            return pinLocked(d, b);
        }
    }

    private IpcMapping pinLocked(SegmentDescriptor d, BufferDescriptor b) {
        if (closed || owner.isClosed()) {
            return null;
        }
        if (state.descriptor != d) {
            adopt(d);
        }
        State s = state;
        if (!s.usable) {
            return null;
        }
        IpcMapping m = s.mappings.get(b);
        if (m == null) {
            m = open(b);
            if (m == null) {
                return null;
            }
            s.mappings.put(b, m);
        }
        return m.tryPin() ? m : null;
    }

    /** Takes the segment's new descriptor now (re-fetched, or changed in the store), if it is new. */
    synchronized void refresh(SegmentDescriptor d) {
        if (!closed && state.descriptor != d) {
            adopt(d);
        }
    }

    /** Takes a new descriptor: keeps the mappings of buffers it still shows, retires the rest. */
    private void adopt(SegmentDescriptor d) {
        boolean sameHost = !failed && owner.isSameHost(d);
        Map<Key, IpcMapping> kept = new HashMap<>();
        Map<BufferDescriptor, IpcMapping> mappings = new ConcurrentHashMap<>();
        if (sameHost) {
            for (BufferDescriptor b : d.buffers()) {
                Key k = keyOrNull(b);
                IpcMapping m = k == null ? null : open.get(k);
                if (m != null) {
                    kept.put(k, m);
                    mappings.put(b, m);
                }
            }
        }
        open.forEach((k, m) -> {
            if (!kept.containsKey(k)) {
                m.retire();
            }
        });
        open.clear();
        open.putAll(kept);
        state = new State(d, sameHost, mappings);
    }

    private IpcMapping open(BufferDescriptor b) {
        try {
            Key k = key(b);
            DeviceIpcMapping mapped = owner.open(k.handle, b.length());
            IpcMapping m = owner.track(mapped, b.address());
            open.put(k, m);
            return m;
        } catch (RuntimeException e) { // the provider's reason, whatever its type: never retried
            fail(b + ": " + e.getMessage());
            return null;
        }
    }

    /** The buffer's key; the caller checked that it publishes a handle. */
    private static Key key(BufferDescriptor b) {
        return new Key(b.address(), b.length(), DeviceIpcHandle.fromJson(b.extra().get(DeviceIpcHandle.FIELD)));
    }

    private static Key keyOrNull(BufferDescriptor b) {
        try {
            return b.extra().has(DeviceIpcHandle.FIELD) ? key(b) : null;
        } catch (MooncakeException e) {
            return null; // malformed: opening it fails and says why
        }
    }

    /** Remembers that IPC does not work with this peer: one log line, every mapping retired. */
    private void fail(String reason) {
        failed = true;
        owner.failed(segment, reason);
        open.values().forEach(IpcMapping::retire);
        open.clear();
        state = new State(state.descriptor, false, Map.of());
    }

    /** Retires every mapping; later requests get none. */
    synchronized void close() {
        closed = true;
        open.values().forEach(IpcMapping::retire);
        open.clear();
        state = new State(null, false, Map.of());
    }
}
