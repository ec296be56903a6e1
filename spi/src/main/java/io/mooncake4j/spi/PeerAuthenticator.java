package io.mooncake4j.spi;

import java.net.Socket;
import java.time.Duration;

/**
 * Proves that both ends of a new connection hold the engine's shared secret ({@code MC_AUTH_TOKEN}),
 * before anything else crosses it. The engine's handshake server and client use it for every
 * handshake connection; a transport uses it ({@link TransportContext#peerAuthenticator()}) for each
 * of its data connections, before it serves or sends a header.
 *
 * <p>Both methods block, each bounded by its timeout, on a connected socket in blocking mode (for a
 * {@link java.nio.channels.SocketChannel}, pass {@code channel.socket()} while it is blocking).
 * They read and write only the exchange's own bytes, so the caller's protocol starts on the next
 * byte. On any failure they throw and the caller must close the socket.
 *
 * <p>When no secret is set ({@link #isEnabled()} false) both methods return at once without touching
 * the socket, so the connection stays byte for byte Mooncake's. Thread safe. See {@code
 * docs/security.md} for the exchange and what it does and does not protect.
 */
public interface PeerAuthenticator {
    /** What a connection is for; bound into the exchange, so a proof for one is no proof for the other. */
    enum Purpose {
        /** A connection to the handshake (RPC) server: Connection, Metadata, Notify, Probe. */
        HANDSHAKE,
        /** A transport's data connection. */
        DATA
    }

    /** The authenticator of an engine without a secret: accepts anyone, touches nothing. */
    PeerAuthenticator OPEN =
            new PeerAuthenticator() {
                @Override
                public boolean isEnabled() {
                    return false;
                }

                @Override
                public void authenticateToServer(Socket socket, Purpose purpose, Duration timeout) {}

                @Override
                public String authenticateClient(Socket socket, Purpose purpose, Duration timeout) {
                    return null;
                }

                @Override
                public String toString() {
                    return "PeerAuthenticator.OPEN";
                }
            };

    /** Whether a secret is set, so that every connection must prove itself. */
    boolean isEnabled();

    /**
     * Client side, right after connecting: proves this engine (under its segment name) and checks
     * that the server proves it too.
     *
     * @throws io.mooncake4j.MooncakeException {@code AUTHENTICATION} when the server does not prove
     *     the secret or refuses ours; {@code IO} when the connection fails or the timeout passes
     */
    void authenticateToServer(Socket socket, Purpose purpose, Duration timeout);

    /**
     * Server side, right after accepting: checks the client's proof and proves this engine.
     *
     * @return the segment name the client proved (null when not enabled)
     * @throws io.mooncake4j.MooncakeException {@code AUTHENTICATION} when the client does not prove
     *     the secret (it was told no more than that); {@code IO} when the connection fails or the
     *     timeout passes
     */
    String authenticateClient(Socket socket, Purpose purpose, Duration timeout);
}
