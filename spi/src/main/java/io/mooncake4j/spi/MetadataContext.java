package io.mooncake4j.spi;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.metadata.SegmentDescriptor;
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

    /**
     * A store that watches peers calls this when a peer's descriptor changed in the store (it
     * registered memory, or restarted under the same name): the engine updates the segment it has
     * open under {@code segmentName}, if any. Called from the store's thread; never throws.
     */
    default void segmentChanged(String segmentName, SegmentDescriptor descriptor) {}
}
