package io.mooncake4j.spi;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import java.net.InetSocketAddress;
import java.time.Duration;

/** What the engine gives a metadata store. */
public interface MetadataContext {
    EngineConfig config();

    /**
     * Calls a peer's handshake server: sends one frame of {@code type} (0 Connection, 1 Metadata, 2
     * Notify, 3 Probe) and returns the reply's JSON.
     */
    JsonObject call(InetSocketAddress peer, int type, JsonObject request, Duration timeout);
}
