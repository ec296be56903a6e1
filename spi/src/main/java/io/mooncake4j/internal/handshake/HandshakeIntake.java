package io.mooncake4j.internal.handshake;

import io.mooncake4j.spi.RateLimitedLog;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Consumer;

/**
 * The handshake server's acceptor: accepts connections and holds each one in a selector until its
 * first byte arrives, then hands it to the server's handler threads. A silent connection costs a
 * socket, not a thread, so a flood of them cannot keep real peers waiting.
 *
 * <p>It enforces the connection limits of {@link HandshakeLimits}: a remote address holds at most
 * {@code maxConnectionsPerAddress} connections (more are closed at once); a connection silent for
 * {@code firstFrameTimeout} is closed; when {@code maxSilentConnections} are silent, the oldest is
 * closed to make room, since a real peer talks at once. {@link #run} is the acceptor thread's body:
 * it survives any failure (logged, then a short back-off) until {@link #stop}.
 */
final class HandshakeIntake implements Runnable {
    private static final int ACCEPTS_PER_WAKEUP = 256;
    private static final long FAILURE_BACKOFF_MILLIS = 50;

    private final ServerSocketChannel listener;
    private final Selector selector;
    private final HandshakeLimits limits;
    private final String server;
    private final RateLimitedLog warnings;
    private final Set<HandshakeConnection> open;
    private final Consumer<HandshakeConnection> dispatch;
    private final ConcurrentHashMap<InetAddress, Integer> perAddress = new ConcurrentHashMap<>();
    private volatile boolean stopped;

    // Touched only by the acceptor thread. Every silent connection has the same timeout, so arrival
    // order is deadline order: the head is the next to expire, and the oldest.
    private final ArrayDeque<HandshakeConnection> silent = new ArrayDeque<>();
    private final List<HandshakeConnection> talking = new ArrayList<>();
    private int silentCount;

    private final LongAdder accepted = new LongAdder();
    private final LongAdder overAddressLimit = new LongAdder();
    private final LongAdder silentClosed = new LongAdder();
    private final LongAdder failures = new LongAdder();

    /**
     * @param listener a bound listening channel, which this intake will close
     * @param server names the server in log lines
     * @param open every connection open, which this intake adds to and releases remove from
     * @param dispatch takes a connection that has sent a byte (its channel back in blocking mode)
     * @throws IOException if the selector cannot be opened
     */
    HandshakeIntake(
            ServerSocketChannel listener,
            HandshakeLimits limits,
            String server,
            RateLimitedLog warnings,
            Set<HandshakeConnection> open,
            Consumer<HandshakeConnection> dispatch)
            throws IOException {
        this.listener = listener;
        this.limits = limits;
        this.server = server;
        this.warnings = warnings;
        this.open = open;
        this.dispatch = dispatch;
        this.selector = Selector.open();
        try {
            listener.configureBlocking(false);
            listener.register(selector, SelectionKey.OP_ACCEPT);
        } catch (IOException | RuntimeException e) {
            HandshakeServer.closeQuietly(selector);
            throw e;
        }
    }

    long accepted() {
        return accepted.sum();
    }

    long overAddressLimit() {
        return overAddressLimit.sum();
    }

    long silentClosed() {
        return silentClosed.sum();
    }

    long failures() {
        return failures.sum();
    }

    /** Makes {@link #run} return soon, closing the listener and every silent connection. */
    void stop() {
        stopped = true;
        selector.wakeup();
    }

    @Override
    public void run() {
        try {
            while (!stopped) {
                try {
                    intakeOnce();
                } catch (Throwable t) {
                    // Nothing may stop the intake silently: log, back off, carry on. An
                    // OutOfMemoryError here is usually someone else's allocation failing.
                    failures.increment();
                    warnings.warn(
                            "intake",
                            "{}: the acceptor failed and carries on ({} failures so far)",
                            server,
                            failures(),
                            t);
                    sleepQuietly(FAILURE_BACKOFF_MILLIS);
                }
            }
        } finally {
            silent.forEach(HandshakeConnection::release);
            talking.forEach(HandshakeConnection::release);
            HandshakeServer.closeQuietly(selector); // deregisters, so really closes, the listener
            HandshakeServer.closeQuietly(listener);
        }
    }

    private void intakeOnce() throws IOException {
        if (talking.isEmpty()) {
            selector.select(millisToNextDeadline());
        } else {
            // Their keys were cancelled; this select deregisters them, so they can block again.
            selector.selectNow();
            dispatchTalking();
        }
        Iterator<SelectionKey> it = selector.selectedKeys().iterator();
        while (it.hasNext()) {
            SelectionKey key = it.next();
            it.remove();
            if (!key.isValid()) {
                continue;
            }
            if (key.isAcceptable()) {
                acceptAll();
            } else if (key.isReadable()) {
                HandshakeConnection c = (HandshakeConnection) key.attachment();
                key.cancel();
                c.silent = false;
                silentCount--;
                talking.add(c);
            }
        }
        closeOverdueSilent();
    }

    private long millisToNextDeadline() {
        HandshakeConnection head = firstSilent();
        if (head == null) {
            return 0; // no deadline: wait for an event, or stop's wakeup
        }
        long nanos = head.firstByteDeadline - System.nanoTime();
        return Math.max(1, TimeUnit.NANOSECONDS.toMillis(nanos + 999_999));
    }

    /** The oldest connection still silent; drops the handed-over ones in front of it. */
    private HandshakeConnection firstSilent() {
        HandshakeConnection head;
        while ((head = silent.peekFirst()) != null && !head.silent) {
            silent.pollFirst();
        }
        return head;
    }

    private void acceptAll() {
        for (int i = 0; i < ACCEPTS_PER_WAKEUP && !stopped; i++) {
            SocketChannel channel;
            try {
                channel = listener.accept();
            } catch (IOException e) {
                if (stopped) {
                    return;
                }
                // Typically EMFILE: back off instead of spinning, and keep serving.
                warnings.warn("accept", "{}: accept failed: {}", server, e.toString());
                sleepQuietly(FAILURE_BACKOFF_MILLIS);
                return;
            }
            if (channel == null) {
                return;
            }
            accepted.increment();
            admit(channel);
        }
    }

    private void admit(SocketChannel channel) {
        InetSocketAddress remote;
        try {
            remote = (InetSocketAddress) channel.getRemoteAddress();
        } catch (IOException e) {
            remote = null;
        }
        if (remote == null) {
            HandshakeServer.closeQuietly(channel); // reset before we could look at it
            return;
        }
        InetAddress address = remote.getAddress();
        if (!reserve(address)) {
            overAddressLimit.increment(); // before the close the peer sees
            HandshakeServer.closeQuietly(channel);
            warnings.warn(
                    "per-address",
                    "{}: closed a connection from {} at once: that address already has {}"
                            + " connections open (MC_HANDSHAKE_MAX_CONNECTIONS_PER_ADDRESS); {}"
                            + " closed so far",
                    server,
                    remote,
                    limits.maxConnectionsPerAddress(),
                    overAddressLimit());
            return;
        }
        HandshakeConnection[] self = new HandshakeConnection[1];
        HandshakeConnection c =
                new HandshakeConnection(
                        channel,
                        remote,
                        () -> {
                            open.remove(self[0]);
                            perAddress.computeIfPresent(address, (a, n) -> n <= 1 ? null : n - 1);
                        });
        self[0] = c;
        open.add(c);
        HandshakeConnection oldest =
                silentCount >= limits.maxSilentConnections() ? firstSilent() : null;
        if (oldest != null) {
            silent.pollFirst();
            oldest.silent = false;
            silentCount--;
            closeSilent(oldest, "the oldest of " + limits.maxSilentConnections() + " silent ones");
        }
        try {
            channel.configureBlocking(false);
            channel.register(selector, SelectionKey.OP_READ, c);
        } catch (IOException e) {
            c.release(); // reset meanwhile
            return;
        }
        c.firstByteDeadline = System.nanoTime() + limits.firstFrameTimeout().toNanos();
        c.silent = true;
        silentCount++;
        silent.addLast(c);
    }

    private boolean reserve(InetAddress address) {
        boolean[] reserved = {false};
        perAddress.compute(
                address,
                (a, n) -> {
                    int now = n == null ? 0 : n;
                    if (now >= limits.maxConnectionsPerAddress()) {
                        return n;
                    }
                    reserved[0] = true;
                    return now + 1;
                });
        return reserved[0];
    }

    private void closeOverdueSilent() {
        long now = System.nanoTime();
        HandshakeConnection head;
        while ((head = firstSilent()) != null && now - head.firstByteDeadline >= 0) {
            silent.pollFirst();
            head.silent = false;
            silentCount--;
            closeSilent(
                    head,
                    "silent for "
                            + limits.firstFrameTimeout().toMillis()
                            + " ms (MC_HANDSHAKE_FIRST_FRAME_TIMEOUT)");
        }
    }

    private void closeSilent(HandshakeConnection c, String why) {
        silentClosed.increment();
        c.release();
        warnings.warn(
                "silent",
                "{}: closed a connection from {} before its first byte: {}; {} closed so far",
                server,
                c.remote,
                why,
                silentClosed());
    }

    private void dispatchTalking() {
        for (HandshakeConnection c : talking) {
            try {
                c.channel.configureBlocking(true);
            } catch (IOException e) {
                c.release(); // reset meanwhile
                continue;
            }
            dispatch.accept(c);
        }
        talking.clear();
    }

    static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
