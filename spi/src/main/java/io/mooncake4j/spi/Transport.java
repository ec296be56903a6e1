package io.mooncake4j.spi;

import com.google.gson.JsonObject;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.metadata.SegmentDescriptor;

/**
 * One engine's instance of a transport: moves the bytes of submitted requests to and from peers'
 * registered memory, and serves peers that do the same to this engine.
 *
 * <p>Threading: {@link #submit} and {@link #abort} are called from many threads at once. A
 * transport owns its threads and sockets and releases them all in {@link #close()}.
 */
public interface Transport extends AutoCloseable {
    /** The protocol name written in the local descriptor's {@code protocol} field. */
    String protocol();

    /**
     * Adds this transport's fields to the local descriptor before it is published (e.g. {@code
     * tcp_data_port}, {@code devices}).
     */
    void describe(JsonObject descriptor);

    /**
     * Per-buffer fields for a newly registered region (e.g. EFA keys); called under the engine's
     * registration lock, before peers can see the region. Throw to refuse the registration.
     */
    default JsonObject registerRegion(MemoryRegion region) {
        return new JsonObject();
    }

    /**
     * The region is going away. Called once per unregistration, always (also when transfers still
     * hold it, and after {@link #close()}), after the region stopped being pinnable and its pins had
     * the transfer timeout to drain. The transport must stop every user that still holds a pin on
     * it, e.g. by closing the connections serving peers' requests into it, so that those pins are
     * released promptly; the engine then waits a few seconds more and, if pins remain, never frees
     * the memory. No peer request is served from the region after this returns. Must not block for
     * long; exceptions are logged and ignored.
     */
    default void unregisterRegion(MemoryRegion region) {}

    /**
     * Starts moving the requests of {@code work} to or from {@code peer}. Returns promptly; every
     * request ends through {@link Submission#partDone} or {@link Submission#fail}. Must not throw.
     */
    void submit(SegmentDescriptor peer, Submission work);

    /**
     * The engine gave up on {@code work} (deadline passed or engine closing): stop touching its local
     * memory as soon as possible, e.g. by closing the connections that carry its parts.
     */
    void abort(Submission work);

    /** Opens connections to the peer up front; idempotent. */
    default void warmup(SegmentDescriptor peer) {}

    /**
     * Answers a peer's Connection handshake (message type 0). The default refuses it; transports
     * that need a handshake (EFA) override it.
     */
    default JsonObject onConnectionRequest(JsonObject request) {
        JsonObject reply = new JsonObject();
        reply.addProperty(
                "reply_msg", "transport '" + protocol() + "' does not accept Connection handshakes");
        return reply;
    }

    /** Stops every thread and closes every socket. Idempotent. */
    @Override
    void close();
}
