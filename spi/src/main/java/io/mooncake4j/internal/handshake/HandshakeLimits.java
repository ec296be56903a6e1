package io.mooncake4j.internal.handshake;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

import java.time.Duration;
import java.util.Objects;

/**
 * What one peer may cost a {@link HandshakeServer}: frame size, time and connections. docs/
 * configuration.md ("Limits and defaults") explains each default.
 *
 * @param maxFrameLength largest frame accepted or sent, in bytes (type byte plus JSON)
 * @param ioTimeout how long a connection may idle between frames, how long a frame may take to
 *     arrive once its first byte is in, and how long a reply may take to be written
 * @param firstFrameTimeout how long a new connection may stay silent before its first byte; it
 *     waits in the server's selector meanwhile, without a handler thread
 * @param maxConnectionsPerAddress connections open at once from one remote IP address; more are
 *     closed at once
 * @param maxHandlerThreads connections served at once
 * @param maxQueuedConnections connections that sent a byte and wait for a handler thread; more are
 *     closed at once
 * @param maxSilentConnections connections waiting for their first byte; when more arrive, the
 *     oldest is closed, so a flood cannot lock out a peer that talks at once
 */
public record HandshakeLimits(
        int maxFrameLength,
        Duration ioTimeout,
        Duration firstFrameTimeout,
        int maxConnectionsPerAddress,
        int maxHandlerThreads,
        int maxQueuedConnections,
        int maxSilentConnections) {
    /** Default first-frame timeout: a peer sends its request as soon as it has connected. */
    public static final Duration DEFAULT_FIRST_FRAME_TIMEOUT = Duration.ofSeconds(1);

    /** Default connections per remote address: half the handler threads. */
    public static final int DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 64;

    /** Default most connections served at once. */
    public static final int DEFAULT_MAX_HANDLER_THREADS = 128;

    /** Default most connections waiting for a handler thread. */
    public static final int DEFAULT_MAX_QUEUED_CONNECTIONS = 512;

    /** Default most connections waiting for their first byte. */
    public static final int DEFAULT_MAX_SILENT_CONNECTIONS = 1024;

    public HandshakeLimits {
        Objects.requireNonNull(ioTimeout, "ioTimeout");
        Objects.requireNonNull(firstFrameTimeout, "firstFrameTimeout");
        if (maxFrameLength < 2) {
            throw invalid("maxFrameLength must be at least 2, got " + maxFrameLength);
        }
        if (ioTimeout.isNegative() || ioTimeout.isZero()) {
            throw invalid("ioTimeout must be positive, got " + ioTimeout);
        }
        if (firstFrameTimeout.isNegative() || firstFrameTimeout.isZero()) {
            throw invalid("firstFrameTimeout must be positive, got " + firstFrameTimeout);
        }
        if (maxConnectionsPerAddress < 1
                || maxHandlerThreads < 1
                || maxQueuedConnections < 1
                || maxSilentConnections < 1) {
            throw invalid(
                    "connection limits must be at least 1, got "
                            + maxConnectionsPerAddress
                            + " per address, "
                            + maxHandlerThreads
                            + " handler threads, "
                            + maxQueuedConnections
                            + " queued, "
                            + maxSilentConnections
                            + " silent");
        }
    }

    /** The defaults, with the given frame size and I/O timeout. */
    public static HandshakeLimits of(int maxFrameLength, Duration ioTimeout) {
        return new HandshakeLimits(
                maxFrameLength,
                ioTimeout,
                DEFAULT_FIRST_FRAME_TIMEOUT,
                DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
                DEFAULT_MAX_HANDLER_THREADS,
                DEFAULT_MAX_QUEUED_CONNECTIONS,
                DEFAULT_MAX_SILENT_CONNECTIONS);
    }

    /** The engine's settings ({@code MC_HANDSHAKE_*}), defaults for the rest. */
    public static HandshakeLimits from(EngineConfig config) {
        return of(config.handshakeMaxLength(), config.handshakeTimeout())
                .withFirstFrameTimeout(config.handshakeFirstFrameTimeout())
                .withMaxConnectionsPerAddress(config.handshakeMaxConnectionsPerAddress());
    }

    public HandshakeLimits withFirstFrameTimeout(Duration timeout) {
        return new HandshakeLimits(
                maxFrameLength,
                ioTimeout,
                timeout,
                maxConnectionsPerAddress,
                maxHandlerThreads,
                maxQueuedConnections,
                maxSilentConnections);
    }

    public HandshakeLimits withMaxConnectionsPerAddress(int max) {
        return new HandshakeLimits(
                maxFrameLength,
                ioTimeout,
                firstFrameTimeout,
                max,
                maxHandlerThreads,
                maxQueuedConnections,
                maxSilentConnections);
    }

    /** Handler threads and the queue in front of them. */
    public HandshakeLimits withHandlerThreads(int threads, int queued) {
        return new HandshakeLimits(
                maxFrameLength,
                ioTimeout,
                firstFrameTimeout,
                maxConnectionsPerAddress,
                threads,
                queued,
                maxSilentConnections);
    }

    public HandshakeLimits withMaxSilentConnections(int max) {
        return new HandshakeLimits(
                maxFrameLength,
                ioTimeout,
                firstFrameTimeout,
                maxConnectionsPerAddress,
                maxHandlerThreads,
                maxQueuedConnections,
                max);
    }

    private static MooncakeException invalid(String message) {
        return new MooncakeException(ErrorCode.INVALID_ARGUMENT, message);
    }
}
