package io.mooncake4j.spi;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import java.time.Duration;

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
     * Sends a Connection handshake (message type 0) to a peer's handshake server and returns its
     * reply. Adds {@code "protocol": <this transport's protocol>} to {@code request} when it has no
     * {@code protocol} field, so that the peer's engine hands it to the same transport.
     *
     * @throws io.mooncake4j.MooncakeException when the peer cannot be reached or answers garbage
     */
    JsonObject connect(String segmentName, JsonObject request, Duration timeout);
}
