package io.mooncake4j.transport.tcp;

import java.io.EOFException;
import java.io.IOException;
import java.net.StandardSocketOptions;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;

/** One TCP connection of a {@link TcpLane}, watched for stalls while the lane has parts in flight. */
final class TcpConnection extends Watched {
    final SocketChannel ch;
    volatile boolean dead;
    private String reason;
    volatile Thread receiver;
    /** SO_SNDBUF as the kernel set it (0 when unknown): how much a caller-run may write. */
    final int sendBuffer;
    private final TcpLane lane;
    private final TcpCounters counters;

    TcpConnection(SocketChannel ch, TcpLane lane, TcpCounters counters) {
        this.ch = ch;
        this.lane = lane;
        this.counters = counters;
        int sb;
        try {
            sb = ch.getOption(StandardSocketOptions.SO_SNDBUF);
        } catch (IOException | RuntimeException e) {
            sb = 0;
        }
        this.sendBuffer = sb;
    }

    @Override
    boolean busy() {
        return lane.busy();
    }

    /** Closes the connection once; the first reason wins. */
    @Override
    synchronized void kill(String why) {
        if (!dead) {
            reason = "tcp " + lane + ": " + why;
            dead = true;
            counters.lanesKilled.increment();
            TcpServer.closeQuietly(ch);
        }
    }

    /** Why the connection died; call after {@link #kill}. */
    synchronized String reason() {
        return reason;
    }

    /** A short description of an I/O failure for a failure reason. */
    static String describe(IOException e) {
        if (e instanceof AsynchronousCloseException || e instanceof ClosedChannelException) {
            return "connection closed";
        }
        if (e instanceof EOFException) {
            return e.getMessage();
        }
        return "connection failed: " + e;
    }
}
