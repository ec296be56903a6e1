package io.mooncake4j.spi;

import com.google.gson.JsonObject;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.metadata.SegmentDescriptor;
import java.util.Map;

/**
 * One engine's instance of a transport: moves the bytes of submitted requests to and from peers'
 * registered memory, and serves peers that do the same to this engine.
 *
 * <p>An engine installs several transports (one per protocol; see {@code MC_INSTALLED_TRANSPORTS}):
 * the primary one, whose {@link #protocol()} the local descriptor publishes, and every other
 * available one, to reach peers that publish another protocol. Every installed transport {@link
 * #describe}s into the local descriptor and registers every region. A request reaches the transport
 * whose protocol the TARGET segment's descriptor publishes; requests to the engine's own segment are
 * copied by the engine and never reach a transport.
 *
 * <p>Threading: {@link #submit}, {@link #abort} and {@link #warmup} are called from many threads at
 * once; {@link #abort} from the thread that cancels (the user's, or an engine thread at a deadline:
 * never the deadline thread itself) and must not block. Reports to
 * a {@link Submission} may come from any thread; the engine never runs user code on the reporting
 * thread (completion stages run on the engine's completion executor). A transport owns its threads
 * and sockets and releases them all in {@link #close()}.
 */
public interface Transport extends AutoCloseable {
    /** The protocol name written in a descriptor's {@code protocol} field, lower case (e.g. {@code tcp}). */
    String protocol();

    /**
     * Adds this transport's segment-wide fields to the local descriptor before it is published (e.g.
     * {@code tcp_data_port}, EFA's {@code devices}). Every installed transport describes into the same
     * object, so field names must not collide between transports.
     */
    void describe(JsonObject descriptor);

    /**
     * Registers a region with this transport (e.g. {@code fi_mr_reg} on every NIC). Called under the
     * engine's registration lock, before peers can see the region, on every installed transport in
     * turn.
     *
     * <p>Transactional: throw (preferably a {@link io.mooncake4j.MooncakeException} with code {@code
     * REGISTRATION} naming the cause) to refuse; the transport must then hold nothing for the region.
     * The engine then calls {@link #unregisterRegion} on every transport that had accepted the region,
     * in reverse order, keeps nothing registered and gives the caller this exception.
     *
     * @return this transport's handle for the region, never null: {@link RegionRegistration#NONE} when
     *     it keeps nothing per region (the default)
     */
    default RegionRegistration registerRegion(MemoryRegion region) {
        return RegionRegistration.NONE;
    }

    /**
     * The region is going away: release what {@link #registerRegion} returned for it. Called exactly
     * once for every region this transport accepted: after the region stopped being pinnable and its
     * pins had the transfer timeout to drain, also when they did not drain (and after {@link
     * #close()}), and when the registration was rolled back because another transport refused it.
     * The transport must stop every user that still holds a pin on the region, e.g. by closing the
     * connections serving peers' requests into it, so that those pins are released promptly; the
     * engine then waits a few seconds more and, if pins remain, never frees the memory. No peer
     * request is served from the region after this returns. Must not block for long; must not throw.
     *
     * @param registration what this transport returned from {@link #registerRegion} for the region
     */
    default void unregisterRegion(MemoryRegion region, RegionRegistration registration) {}

    /**
     * Starts moving the requests of {@code work} to or from {@code peer}, whose descriptor publishes
     * this transport's protocol. Returns promptly. Every request must be reported: each part issued
     * through {@link Submission#partDone} or {@link Submission#partFailed} exactly once, or a request
     * none of whose parts was issued through {@link Submission#fail}; also after {@link #abort} and in
     * {@link #close()} (the local memory stays pinned until then). Must not throw.
     */
    void submit(SegmentDescriptor peer, Submission work);

    /**
     * The engine gave up on {@code work}: its deadline passed or it was cancelled (batch or engine
     * closed). The engine has already ended its requests (TIMEOUT or CANCELED, visible to the user) and
     * {@link Submission#isAborted()} is true. Must return at once, without blocking and without
     * waiting for I/O, and must not disturb other submissions (never close a connection that carries
     * other work just to stop this one).
     *
     * <p>What to do: drop parts not yet issued (reporting each through {@link Submission#fail} or
     * {@link Submission#partFailed}), and let issued parts finish or fail on their own (a dead peer is
     * the transport's own failure detector's business, e.g. a stall timeout). The engine releases the
     * local memory of each request only when every part issued for it has been reported, so late
     * reports are required, and harmless: they do not change the request's status.
     */
    void abort(Submission work);

    /** Opens connections to the peer up front; idempotent. */
    default void warmup(SegmentDescriptor peer) {}

    /**
     * Answers a peer's Connection handshake (message type 0). The engine dispatches a request by its
     * {@code protocol} field (added by {@link TransportContext#connect}) to the transport installed for
     * that protocol, and a request without one (a Mooncake peer) to the primary transport. The default
     * refuses it; transports that need a handshake (EFA) override it. A non-empty {@code reply_msg}
     * in the reply means refused.
     */
    default JsonObject onConnectionRequest(JsonObject request) {
        JsonObject reply = new JsonObject();
        reply.addProperty(
                "reply_msg", "transport '" + protocol() + "' does not accept Connection handshakes");
        return reply;
    }

    /**
     * Stops every thread and closes every socket; reports every part still issued or queued (the
     * engine has already ended their requests CANCELED when the engine closes). Idempotent.
     */
    @Override
    void close();

    /**
     * This transport's counters and gauges, by snake-case name (e.g. {@code served_requests}): what
     * {@link io.mooncake4j.TransferEngine#counters()} reports under the protocol's name. Read often
     * by monitoring, so cheap and never blocking; the default has none.
     */
    default Map<String, Long> counters() {
        return Map.of();
    }
}
