package io.mooncake4j.spi;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.net.InetAddress;
import java.time.Duration;
import java.util.List;

/**
 * What the engine gives a transport: settings, access to local memory and the peer handshake. Each
 * installed transport gets its own context.
 */
public interface TransportContext {
    /** The engine's settings. */
    EngineConfig config();

    /** The host name or IP address this engine advertises (MOONCAKE_LOCAL_HOSTNAME). */
    String localHostname();

    /** The local segment name ({@code host:port}); known once the handshake server runs. */
    String localSegmentName();

    /** Registered local memory, for bounds checks when serving peers. */
    LocalMemory localMemory();

    /**
     * Where a peer lives: the host of its handshake address as the metadata store gives it ({@code
     * MetadataStore.rpcAddress}), resolved. In P2P mode that is the host part of the segment name
     * ({@code host:port}); with a store such as etcd it is the {@code ip_or_host_name} of the peer's
     * {@code rpc_meta} entry, and the name may be anything ({@code MC_LOCAL_SERVER_NAME}, e.g. {@code
     * prefill-0}), so a transport must never take a host from a segment name. A transport that
     * connects to a port its peer publishes (tcp's {@code tcp_data_port}) connects there, as
     * Mooncake does.
     *
     * <p>The engine looks the host up when it fetches the segment's descriptor ({@code openSegment},
     * {@code refreshSegment}) and again on the first call after the descriptor changed (a peer that
     * restarted under the same name may live elsewhere); other calls return the cached answer and
     * touch no store. Call it again for each new descriptor of a peer.
     *
     * <p>The default refuses: it is there for contexts that locate no peers (tests); the engine's
     * context implements it.
     *
     * @throws MooncakeException {@code SEGMENT_NOT_FOUND} when the store knows no address for the
     *     segment or its host does not resolve; {@code METADATA} when the store does not answer
     */
    default InetAddress peerHost(String segmentName) {
        throw new MooncakeException(ErrorCode.SEGMENT_NOT_FOUND,
                "this transport context locates no peers, so segment '" + segmentName + "' cannot be reached");
    }

    /**
     * Sends a Connection handshake (message type 0) to a peer's handshake server and returns its
     * reply. Adds {@code "protocol": <this transport's protocol>} to {@code request} when it has no
     * {@code protocol} field, so that the peer's engine hands it to the same transport.
     *
     * @throws io.mooncake4j.MooncakeException when the peer cannot be reached or answers garbage
     */
    JsonObject connect(String segmentName, JsonObject request, Duration timeout);

    /**
     * How the transport's data connections prove themselves: with a secret set, an initiator calls
     * {@link PeerAuthenticator#authenticateToServer} on each new connection before its first header,
     * and a target calls {@link PeerAuthenticator#authenticateClient} on each accepted one before it
     * reads a header, closing it when that throws. {@link PeerAuthenticator#OPEN} (the default)
     * when no secret is set.
     */
    default PeerAuthenticator peerAuthenticator() {
        return PeerAuthenticator.OPEN;
    }

    /**
     * The engine's device memory providers (GPU memory, {@code cuda:N}), so that no transport names a
     * GPU module: for a transport that stages device memory itself (TCP: {@link
     * DeviceMemoryProvider#allocatePinned} and {@link DeviceMemoryProvider#openStager}) or registers it
     * with its own library and needs the device's context current while it does (EFA: {@code FI_HMEM},
     * {@link DeviceMemoryProvider#inDeviceContext}). The default has none: a context without devices.
     */
    default DeviceMemoryProviders devices() {
        return new DeviceMemoryProviders(List.of());
    }
}
