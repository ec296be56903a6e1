package io.mooncake4j;

import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.MetadataStore;
import java.net.InetAddress;
import java.util.List;
import java.util.Objects;

/**
 * A handle on a peer's (or this engine's own) set of registered buffers, from {@link
 * TransferEngine#openSegment}. The engine re-fetches the descriptor when a request targets memory
 * that the cached descriptor does not show, so memory the peer registers later is reachable.
 */
public final class Segment {
    private final String name;
    private final boolean local;
    private final Object owner;
    private volatile SegmentDescriptor descriptor;
    private volatile Host host;

    Segment(String name, boolean local, SegmentDescriptor descriptor, Object owner) {
        this.name = Objects.requireNonNull(name, "name");
        this.local = local;
        this.descriptor = descriptor;
        this.owner = owner;
    }

    /** The segment name ({@code host:port} in P2P mode). */
    public String name() {
        return name;
    }

    /** Whether this is the engine's own segment (transfers are local copies). */
    public boolean isLocal() {
        return local;
    }

    /** The descriptor as last fetched. */
    public SegmentDescriptor descriptor() {
        return descriptor;
    }

    /** The buffers as last fetched. */
    public List<BufferDescriptor> buffers() {
        return descriptor.buffers();
    }

    void descriptor(SegmentDescriptor d) {
        this.descriptor = d;
    }

    /**
     * Where the peer lives, from {@code store} ({@link MetadataStore#rpcAddress}), looked up once per
     * descriptor: a new descriptor (re-fetched, or a peer that restarted under this name) is looked
     * up again, so a host cached for an older one is never used with it.
     */
    InetAddress host(MetadataStore store) {
        SegmentDescriptor d = descriptor;
        Host h = host;
        if (h == null || h.descriptor != d) {
            h = new Host(d, store.rpcAddress(name).getAddress());
            host = h;
        }
        return h.address;
    }

    Object owner() {
        return owner;
    }

    private record Host(SegmentDescriptor descriptor, InetAddress address) {}

    @Override
    public String toString() {
        return "Segment[" + name + (local ? ", local" : "") + ", " + descriptor.buffers().size() + " buffers]";
    }
}
