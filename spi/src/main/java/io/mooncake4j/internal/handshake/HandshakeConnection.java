package io.mooncake4j.internal.handshake;

import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.channels.SocketChannel;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One accepted handshake connection: held by the {@link HandshakeIntake} until its first byte, then
 * served by a {@link HandshakeServer} handler thread.
 */
final class HandshakeConnection {
    final SocketChannel channel;
    final Socket socket;
    final InetSocketAddress remote;
    private final Runnable onRelease;
    private final AtomicBoolean released = new AtomicBoolean();

    // Touched only by the intake thread.
    boolean silent;
    long firstByteDeadline;

    HandshakeConnection(SocketChannel channel, InetSocketAddress remote, Runnable onRelease) {
        this.channel = channel;
        this.socket = channel.socket();
        this.remote = remote;
        this.onRelease = onRelease;
    }

    /** Closes the connection and gives back its place (per address, in the open set); idempotent. */
    void release() {
        if (released.compareAndSet(false, true)) {
            onRelease.run();
            HandshakeServer.closeQuietly(channel);
        }
    }
}
