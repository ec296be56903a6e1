package io.mooncake4j.internal.handshake;

import com.google.gson.JsonObject;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.PeerAuthenticator;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Calls a peer's handshake server: one connection per call, as Mooncake does (its server closes
 * after each reply), so a call never depends on the state of an earlier one.
 *
 * <p>The whole call (connect, write, read) is bounded by its timeout: reads use the remaining time
 * as {@code SO_TIMEOUT}, and a shared daemon watchdog closes the socket at the deadline, which also
 * ends a write to a peer that stopped reading.
 */
public final class HandshakeClient {
    private static final byte[] HTTP = "HTTP/".getBytes(StandardCharsets.US_ASCII);

    private HandshakeClient() {}

    /**
     * Sends one request without authenticating ({@link PeerAuthenticator#OPEN}).
     *
     * @see #call(InetSocketAddress, int, JsonObject, Duration, int, PeerAuthenticator)
     */
    public static JsonObject call(
            InetSocketAddress peer,
            int type,
            JsonObject request,
            Duration timeout,
            int maxFrameLength) {
        return call(peer, type, request, timeout, maxFrameLength, PeerAuthenticator.OPEN);
    }

    /**
     * Sends one request and returns the reply's JSON.
     *
     * @param peer the handshake server; an unresolved address is resolved here
     * @param type 0 Connection, 1 Metadata, 2 Notify, 3 Probe
     * @param request the body
     * @param timeout bound on the whole call, connect included
     * @param maxFrameLength largest request or reply accepted (MC_HANDSHAKE_MAX_LENGTH)
     * @param auth runs the authentication exchange right after connecting, when enabled
     * @throws MooncakeException {@code SEGMENT_NOT_FOUND} if nothing listens at {@code peer}
     *     (connection refused) or its host name does not resolve; {@code METADATA} for a timeout, a
     *     connection closed without a reply, or a malformed reply; {@code INVALID_ARGUMENT} for a
     *     bad type or a request larger than {@code maxFrameLength}; {@code AUTHENTICATION} when
     *     the peer does not prove the secret or refuses ours
     */
    public static JsonObject call(
            InetSocketAddress peer,
            int type,
            JsonObject request,
            Duration timeout,
            int maxFrameLength,
            PeerAuthenticator auth) {
        Objects.requireNonNull(peer, "peer");
        Objects.requireNonNull(auth, "auth");
        Objects.requireNonNull(request, "request");
        Objects.requireNonNull(timeout, "timeout");
        HandshakeFrame.checkType(type);
        if (timeout.isNegative() || timeout.isZero()) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "handshake timeout must be positive, got " + timeout);
        }
        String what = HandshakeFrame.typeName(type) + " request to " + describe(peer);
        byte[] frame = HandshakeCodec.encode(HandshakeFrame.of(type, request));
        if (frame.length - HandshakeCodec.LENGTH_BYTES > maxFrameLength) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    what
                            + ": the request is "
                            + (frame.length - HandshakeCodec.LENGTH_BYTES)
                            + " bytes, over the handshake limit of "
                            + maxFrameLength
                            + " (MC_HANDSHAKE_MAX_LENGTH)");
        }
        InetSocketAddress target = peer;
        if (target.isUnresolved()) {
            target = new InetSocketAddress(peer.getHostString(), peer.getPort());
            if (target.isUnresolved()) {
                throw new MooncakeException(
                        ErrorCode.SEGMENT_NOT_FOUND,
                        what
                                + " failed: cannot resolve host '"
                                + peer.getHostString()
                                + "'; check DNS and /etc/hosts, or use an IP address");
            }
        }

        long timeoutNanos = timeout.toNanos();
        long deadline = System.nanoTime() + timeoutNanos;
        Socket socket = new Socket();
        AtomicBoolean expired = new AtomicBoolean();
        ScheduledFuture<?> kill =
                Watchdog.INSTANCE.schedule(
                        () -> {
                            expired.set(true);
                            HandshakeServer.closeQuietly(socket);
                        },
                        timeoutNanos,
                        TimeUnit.NANOSECONDS);
        String stage = "connecting";
        BufferedInputStream in = null;
        try {
            socket.setTcpNoDelay(true);
            socket.connect(target, remainingMillis(deadline));
            if (auth.isEnabled()) {
                stage = "authenticating";
                // its errors name the peer and say what to check
                auth.authenticateToServer(
                        socket,
                        PeerAuthenticator.Purpose.HANDSHAKE,
                        Duration.ofMillis(remainingMillis(deadline)));
            }
            stage = "sending the request";
            socket.setSoTimeout(remainingMillis(deadline));
            socket.getOutputStream().write(frame);
            socket.getOutputStream().flush();
            stage = "waiting for the reply";
            // Marked so that a malformed reply's first bytes can be read again to recognise HTTP.
            in = new BufferedInputStream(socket.getInputStream());
            in.mark(HandshakeCodec.LENGTH_BYTES);
            HandshakeFrame reply =
                    HandshakeCodec.read(
                            in,
                            maxFrameLength,
                            bytesSoFar -> socket.setSoTimeout(remainingMillis(deadline)));
            if (reply == null) {
                throw new MooncakeException(
                        ErrorCode.METADATA,
                        what
                                + " failed: the peer closed the connection without replying; it"
                                + " refused the request or is overloaded (see its log)"
                                + unauthenticatedHint(auth));
            }
            boolean sameType =
                    reply.isLegacy() ? type == HandshakeFrame.CONNECTION : reply.type() == type;
            if (!sameType) {
                throw new MooncakeException(
                        ErrorCode.METADATA,
                        what
                                + " failed: the reply is a "
                                + HandshakeFrame.typeName(reply.type())
                                + (reply.isLegacy() ? " (legacy)" : "")
                                + " frame; is this a Mooncake handshake server of a compatible"
                                + " version?");
            }
            return reply.body();
        } catch (ConnectException e) {
            throw new MooncakeException(
                    ErrorCode.SEGMENT_NOT_FOUND,
                    what
                            + " failed: nothing listens there ("
                            + e.getMessage()
                            + "); check that the peer engine is running and that the segment name"
                            + " is its current address (the port changes when the peer restarts)",
                    e);
        } catch (MalformedFrameException e) {
            if (startsWithHttp(in)) {
                throw new MooncakeException(
                        ErrorCode.METADATA,
                        what
                                + " failed: the peer at "
                                + describe(peer)
                                + " answered with HTTP: is this the handshake port"
                                + " (MC_MIN_RPC_PORT..MC_MAX_RPC_PORT, 15000-17000 by default)? A"
                                + " segment name is the peer engine's host and handshake port",
                        e);
            }
            throw new MooncakeException(
                    ErrorCode.METADATA,
                    what
                            + " failed: malformed reply ("
                            + e.getMessage()
                            + "); is this a Mooncake handshake server?",
                    e);
        } catch (IOException e) {
            if (expired.get() || e instanceof SocketTimeoutException) {
                throw new MooncakeException(
                        ErrorCode.METADATA,
                        what
                                + " timed out after "
                                + timeout.toMillis()
                                + " ms while "
                                + stage
                                + "; check that the peer is reachable (firewall, security group)"
                                + " and responsive, or raise MC_HANDSHAKE_CONNECT_TIMEOUT",
                        e);
            }
            throw new MooncakeException(
                    ErrorCode.METADATA,
                    what + " failed while " + stage + ": " + e + unauthenticatedHint(auth),
                    e);
        } finally {
            kill.cancel(false);
            HandshakeServer.closeQuietly(socket);
        }
    }

    /** Why a peer may have dropped a client that does not authenticate. */
    private static String unauthenticatedHint(PeerAuthenticator auth) {
        return auth.isEnabled()
                ? ""
                : "; a peer with a secret (MC_AUTH_TOKEN) drops connections that do not"
                        + " authenticate";
    }

    /** Whether the reply read from {@code in} (marked at its start) begins like an HTTP response. */
    private static boolean startsWithHttp(BufferedInputStream in) {
        if (in == null) {
            return false;
        }
        try {
            in.reset();
            return Arrays.equals(in.readNBytes(HTTP.length), HTTP);
        } catch (IOException e) {
            return false; // more than the length prefix was read: the mark is gone, so not HTTP's
        }
    }

    /** Milliseconds left, rounded up; throws once the deadline has passed. */
    private static int remainingMillis(long deadline) throws SocketTimeoutException {
        long ns = deadline - System.nanoTime();
        if (ns <= 0) {
            throw new SocketTimeoutException("handshake deadline passed");
        }
        // Round up, and never 0: 0 would mean no timeout at all for connect and SO_TIMEOUT.
        return (int)
                Math.max(
                        1,
                        Math.min(Integer.MAX_VALUE, TimeUnit.NANOSECONDS.toMillis(ns + 999_999)));
    }

    private static String describe(InetSocketAddress a) {
        String host = a.getHostString();
        return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + a.getPort();
    }

    /** One daemon thread, started on first use and stopped after 10 s idle. */
    private static final class Watchdog {
        static final ScheduledThreadPoolExecutor INSTANCE = create();

        private static ScheduledThreadPoolExecutor create() {
            ScheduledThreadPoolExecutor e =
                    new ScheduledThreadPoolExecutor(
                            1,
                            r -> {
                                Thread t = new Thread(r, "mooncake4j-handshake-client-watchdog");
                                t.setDaemon(true);
                                return t;
                            });
            e.setRemoveOnCancelPolicy(true);
            e.setKeepAliveTime(10, TimeUnit.SECONDS);
            e.allowCoreThreadTimeOut(true);
            return e;
        }
    }
}
