package io.mooncake4j.internal.handshake;

import com.google.gson.JsonObject;

import java.net.InetSocketAddress;

/**
 * Answers handshake requests for a {@link HandshakeServer}. Called concurrently from the server's
 * handler threads, so implementations must be thread safe.
 */
@FunctionalInterface
public interface HandshakeHandler {
    /**
     * Answers one request.
     *
     * <p>If this throws or returns null, the server logs it and, for a Connection request, replies
     * {@code {"reply_msg": "<why>"}} (Mooncake's way to refuse a connection); for any other type it
     * closes the connection without a reply, because Metadata, Notify and Probe have no error form
     * a Mooncake peer understands and a made-up reply could be taken for a real one.
     *
     * @param type 0 Connection (also for legacy frames), 1 Metadata, 2 Notify, 3 Probe
     * @param request the request body; the handler may keep or modify it
     * @param remote the peer's address as seen by the server
     * @param authenticatedPeer the segment name the peer proved with the shared secret on this
     *     connection; null when the server has no secret (anyone is served)
     * @return the reply body
     */
    JsonObject handle(int type, JsonObject request, InetSocketAddress remote, String authenticatedPeer);
}
