package io.mooncake4j.spi;

import io.mooncake4j.metadata.SegmentDescriptor;
import java.net.InetSocketAddress;
import java.time.Duration;

/** Publishes this engine's segment descriptor and finds peers'. Thread safe. */
public interface MetadataStore extends AutoCloseable {
    /**
     * The segment name peers will use for this engine, given its advertised host and the port of its
     * handshake server (P2P: {@code host:port}).
     */
    String segmentName(String hostname, int rpcPort);

    /**
     * Publishes the current local descriptor (called at start and after every registration change,
     * one call at a time). P2P does nothing: its handshake server answers with the live descriptor.
     *
     * @throws io.mooncake4j.MooncakeException {@code METADATA} when the store did not take it; the
     *     engine then rolls the registration back and publishes the previous descriptor
     */
    void publish(SegmentDescriptor descriptor, InetSocketAddress rpcAddress);

    /**
     * Fetches a peer's current descriptor.
     *
     * @throws io.mooncake4j.MooncakeException with {@code SEGMENT_NOT_FOUND} or {@code METADATA}
     */
    SegmentDescriptor fetch(String segmentName, Duration timeout);

    /** Where a peer's handshake server listens (for notifications and Connection handshakes). */
    InetSocketAddress rpcAddress(String segmentName);

    /** Withdraws the local descriptor and releases connections. Idempotent. */
    @Override
    void close();
}
