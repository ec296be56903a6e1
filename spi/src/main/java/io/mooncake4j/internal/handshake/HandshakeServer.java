package io.mooncake4j.internal.handshake;

import com.google.gson.JsonObject;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.PeerAuthenticator;
import io.mooncake4j.spi.RateLimitedLog;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.Closeable;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PushbackInputStream;
import java.net.BindException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.nio.channels.ServerSocketChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * The handshake server: answers Connection, Metadata, Notify and Probe frames through a {@link
 * HandshakeHandler}.
 *
 * <p>Unlike Mooncake's server (one thread, one connection at a time, so 32+ peers opening segments
 * at once see refusals), this one serves many peers at once and bounds what each may cost ({@link
 * HandshakeLimits}):
 *
 * <ul>
 *   <li>one acceptor thread ({@link HandshakeIntake}) accepts connections and waits, in a
 *       selector, for each one's first byte: a silent connection costs a socket, not a thread, and is closed after {@code
 *       firstFrameTimeout} (1 s by default); when {@code maxSilentConnections} wait at once, the
 *       oldest is closed, so a flood of silent sockets cannot lock out a peer that talks at once;
 *   <li>a remote address may hold at most {@code maxConnectionsPerAddress} connections; more are
 *       closed at once;
 *   <li>a connection that has sent a byte goes to a pool of at most {@code maxHandlerThreads}
 *       threads with a queue of at most {@code maxQueuedConnections}; beyond that it is closed at
 *       once, so its client fails fast instead of waiting out its timeout;
 *   <li>every frame is bounded in size ({@code maxFrameLength}), in JSON nesting, and in time: a
 *       frame must be complete {@code ioTimeout} after its first byte, so a peer trickling one byte
 *       a second is cut off, and a connection may idle {@code ioTimeout} between frames; replies
 *       are written under the same deadline;
 *   <li>a connection may carry several frames, each answered in order (Mooncake's client opens one
 *       per call and closes it after the reply, which ends the loop); between frames it gives up
 *       its thread as soon as other connections are queued, so kept-alive connections cannot starve
 *       new ones;
 *   <li>with a {@link PeerAuthenticator} that is enabled (a secret is set), a connection must
 *       complete the authentication exchange, within {@code ioTimeout} of its first byte, before
 *       any frame is read: a peer without the secret is closed unanswered, so it learns no
 *       address and delivers no notification. Without a secret nothing of this runs and the bytes
 *       on the wire are Mooncake's;
 *   <li>a malformed frame closes that connection. Nothing a peer sends can stop the server: every
 *       refusal is counted and logged with the peer's address, at most one line per kind every 30
 *       s, and a failure in a service thread is logged and the thread carries on.
 * </ul>
 *
 * <p>{@link #close()} is idempotent: it stops accepting, closes every connection, and waits briefly
 * for handlers to return.
 */
public final class HandshakeServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HandshakeServer.class);
    private static final int ACCEPT_BACKLOG = 1024;
    private static final long CLOSE_GRACE_MILLIS = 2000;
    private static final long IDLE_POLL_MILLIS = 50;
    private static final Duration WARN_INTERVAL = Duration.ofSeconds(30);

    private final ServerSocket serverSocket;
    private final int port;
    private final String name;
    private final HandshakeLimits limits;
    private final long ioTimeoutNanos;
    private final int ioTimeoutMillis;
    private final HandshakeHandler handler;
    private final PeerAuthenticator auth;
    private final ThreadPoolExecutor workers;
    private final ScheduledThreadPoolExecutor writeWatchdog;
    private final HandshakeIntake intake;
    private final Thread acceptor;
    private final Set<HandshakeConnection> open = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final RateLimitedLog warnings = new RateLimitedLog(LOG, WARN_INTERVAL);

    private final LongAdder framesServed = new LongAdder();
    private final LongAdder framesRejected = new LongAdder();
    private final LongAdder handlerFailures = new LongAdder();
    private final LongAdder connectionsRejected = new LongAdder();
    private final LongAdder connectionFailures = new LongAdder();
    private final LongAdder repliesFailed = new LongAdder();
    private final LongAdder unauthenticated = new LongAdder();

    private HandshakeServer(
            ServerSocket serverSocket,
            HandshakeLimits limits,
            PeerAuthenticator auth,
            HandshakeHandler handler)
            throws IOException {
        this.serverSocket = serverSocket;
        this.port = serverSocket.getLocalPort();
        this.name = "handshake server on port " + port;
        this.limits = limits;
        this.ioTimeoutNanos = limits.ioTimeout().toNanos();
        this.ioTimeoutMillis =
                (int) Math.max(1, Math.min(Integer.MAX_VALUE, limits.ioTimeout().toMillis()));
        this.handler = handler;
        this.auth = auth;
        String prefix = "mooncake4j-handshake-" + port;
        this.workers =
                new ThreadPoolExecutor(
                        limits.maxHandlerThreads(),
                        limits.maxHandlerThreads(),
                        30,
                        TimeUnit.SECONDS,
                        new ArrayBlockingQueue<>(limits.maxQueuedConnections()),
                        daemonThreads(prefix + "-handler-"));
        workers.allowCoreThreadTimeOut(true);
        this.writeWatchdog =
                new ScheduledThreadPoolExecutor(1, daemonThreads(prefix + "-watchdog-"));
        writeWatchdog.setRemoveOnCancelPolicy(true);
        writeWatchdog.allowCoreThreadTimeOut(true);
        writeWatchdog.setKeepAliveTime(10, TimeUnit.SECONDS);
        this.intake =
                new HandshakeIntake(
                        serverSocket.getChannel(), limits, name, warnings, open, this::dispatch);
        this.acceptor = new Thread(intake, prefix + "-accept");
        acceptor.setDaemon(true);
    }

    /**
     * Binds and starts a server with the default limits ({@link HandshakeLimits#of}).
     *
     * @see #start(String, int, int, HandshakeLimits, HandshakeHandler)
     */
    public static HandshakeServer start(
            String bindHost,
            int minPort,
            int maxPort,
            int maxFrameLength,
            Duration ioTimeout,
            HandshakeHandler handler) {
        return start(
                bindHost, minPort, maxPort, HandshakeLimits.of(maxFrameLength, ioTimeout), handler);
    }

    /**
     * Binds and starts a server that authenticates no one ({@link PeerAuthenticator#OPEN}).
     *
     * @see #start(String, int, int, HandshakeLimits, PeerAuthenticator, HandshakeHandler)
     */
    public static HandshakeServer start(
            String bindHost,
            int minPort,
            int maxPort,
            HandshakeLimits limits,
            HandshakeHandler handler) {
        return start(bindHost, minPort, maxPort, limits, PeerAuthenticator.OPEN, handler);
    }

    /**
     * Binds and starts a server.
     *
     * @param bindHost the local address to listen on; null or empty for every address
     * @param minPort lowest port to try
     * @param maxPort highest port to try; {@code minPort == maxPort == 0} lets the OS choose
     * @param limits what one peer may cost
     * @param auth checks every connection before its first frame (see the class comment)
     * @param handler answers requests, from many threads at once
     * @throws MooncakeException {@code IO} if no port in the range is free, {@code CONFIGURATION}
     *     for a bad range or bind address
     */
    public static HandshakeServer start(
            String bindHost,
            int minPort,
            int maxPort,
            HandshakeLimits limits,
            PeerAuthenticator auth,
            HandshakeHandler handler) {
        Objects.requireNonNull(handler, "handler");
        Objects.requireNonNull(limits, "limits");
        Objects.requireNonNull(auth, "auth");
        ServerSocket ss = bind(bindHost, minPort, maxPort);
        HandshakeServer server;
        try {
            server = new HandshakeServer(ss, limits, auth, handler);
            server.acceptor.start();
        } catch (IOException e) {
            closeQuietly(ss);
            throw new MooncakeException(
                    ErrorCode.IO, "cannot start the handshake server: " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            closeQuietly(ss);
            throw e;
        }
        LOG.debug("handshake server listening on {}", ss.getLocalSocketAddress());
        return server;
    }

    /** The port the server listens on. */
    public int port() {
        return port;
    }

    /** The address the server listens on (a wildcard address when bound to every address). */
    public InetSocketAddress localAddress() {
        return (InetSocketAddress) serverSocket.getLocalSocketAddress();
    }

    /** The limits it enforces. */
    public HandshakeLimits limits() {
        return limits;
    }

    /** Requests answered. */
    public long framesServed() {
        return framesServed.sum();
    }

    /**
     * Frames refused: bad length, not UTF-8, not a JSON object, nested too deep, truncated, or not
     * complete in time. Each closed its connection.
     */
    public long framesRejected() {
        return framesRejected.sum();
    }

    /** Requests whose handler threw or returned null. */
    public long handlerFailures() {
        return handlerFailures.sum();
    }

    /** Connections accepted from the OS (including those then closed unread). */
    public long connectionsAccepted() {
        return intake.accepted();
    }

    /** Connections closed unread because every handler thread was busy and the queue full. */
    public long connectionsRejected() {
        return connectionsRejected.sum();
    }

    /** Connections closed at once because their address already held its most connections. */
    public long connectionsOverAddressLimit() {
        return intake.overAddressLimit();
    }

    /**
     * Connections closed before their first byte: silent for the first-frame timeout, or the oldest
     * silent one when too many waited.
     */
    public long silentConnectionsClosed() {
        return intake.silentClosed();
    }

    /**
     * Connections closed unanswered because they did not complete the authentication exchange (a
     * secret is set and the peer does not prove it holds it).
     */
    public long connectionsUnauthenticated() {
        return unauthenticated.sum();
    }

    /** Replies not written: the peer reset the connection or did not read within the I/O timeout. */
    public long repliesFailed() {
        return repliesFailed.sum();
    }

    /** Unexpected failures in the server's own threads, each logged; the threads carried on. */
    public long serviceFailures() {
        return intake.failures() + connectionFailures.sum();
    }

    /** Every counter above, and the open connections, by snake-case name. */
    public Map<String, Long> counters() {
        Map<String, Long> c = new LinkedHashMap<>();
        c.put("frames_served", framesServed());
        c.put("frames_rejected", framesRejected());
        c.put("handler_failures", handlerFailures());
        c.put("connections_accepted", connectionsAccepted());
        c.put("connections_rejected", connectionsRejected());
        c.put("connections_over_address_limit", connectionsOverAddressLimit());
        c.put("silent_connections_closed", silentConnectionsClosed());
        c.put("connections_unauthenticated", connectionsUnauthenticated());
        c.put("replies_failed", repliesFailed());
        c.put("service_failures", serviceFailures());
        c.put("connections_open", (long) activeConnections());
        return c;
    }

    /** Connections open now (silent, being served or queued). */
    public int activeConnections() {
        return open.size();
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
        return closed.get();
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        intake.stop();
        workers.shutdown();
        boolean interrupted = false;
        try {
            // The acceptor closes the listening socket and the silent connections on its way out.
            acceptor.join(CLOSE_GRACE_MILLIS);
            // Blocking socket reads ignore interrupts: closing the sockets is what frees the
            // threads. Queued connections are in the set too, so their tasks find a closed socket.
            for (HandshakeConnection c : open) {
                closeQuietly(c.channel);
            }
            if (!workers.awaitTermination(CLOSE_GRACE_MILLIS, TimeUnit.MILLISECONDS)) {
                LOG.warn(
                        "{}: {} handler(s) still running {} ms after close; interrupting them",
                        name,
                        workers.getActiveCount(),
                        CLOSE_GRACE_MILLIS);
                workers.shutdownNow();
            }
        } catch (InterruptedException e) {
            interrupted = true;
            workers.shutdownNow();
        } finally {
            writeWatchdog.shutdownNow();
            if (acceptor.isAlive()) {
                LOG.warn("{}: the acceptor did not stop within {} ms", name, CLOSE_GRACE_MILLIS);
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        LOG.debug(
                "{} closed: {} frames served, {} rejected, {} connections rejected when saturated,"
                        + " {} over the per-address limit, {} silent closed, {} handler failures,"
                        + " {} service failures",
                name,
                framesServed(),
                framesRejected(),
                connectionsRejected(),
                connectionsOverAddressLimit(),
                silentConnectionsClosed(),
                handlerFailures(),
                serviceFailures());
    }

    @Override
    public String toString() {
        return "HandshakeServer["
                + serverSocket.getLocalSocketAddress()
                + (closed.get() ? ", closed]" : "]");
    }

    // ---------------------------------------------------------------- service (handler threads)

    /** Called by the intake with a connection that has sent a byte. */
    private void dispatch(HandshakeConnection c) {
        try {
            workers.execute(() -> serveAndRelease(c));
        } catch (RejectedExecutionException e) {
            if (closed.get()) {
                c.release();
                return;
            }
            connectionsRejected.increment(); // before the close the peer sees
            c.release();
            warnings.warn(
                    "saturated",
                    "{} is saturated ({} connections being served, {} queued): closed a"
                            + " connection from {} unread; {} refused so far",
                    name,
                    workers.getActiveCount(),
                    workers.getQueue().size(),
                    c.remote,
                    connectionsRejected());
        }
    }

    private void serveAndRelease(HandshakeConnection c) {
        try {
            serve(c);
        } catch (Throwable t) {
            // A handler thread must not die: log (rate-limited, no trace for an Error such as
            // StackOverflowError, whose trace is a thousand lines) and take the next task.
            connectionFailures.increment();
            Object[] args = {name, c.remote, t.toString(), t};
            warnings.warn(
                    "connection",
                    "{}: serving {} failed: {}",
                    t instanceof Error ? Arrays.copyOf(args, 3) : args);
        } finally {
            c.release();
        }
    }

    private void serve(HandshakeConnection c) {
        Socket socket = c.socket;
        InetSocketAddress remote = c.remote;
        PushbackInputStream in;
        OutputStream out;
        try {
            socket.setTcpNoDelay(true);
            in = new PushbackInputStream(socket.getInputStream(), 1);
            out = socket.getOutputStream();
        } catch (IOException e) {
            return; // closed by close() while queued, or reset by the peer
        }
        String peer;
        try {
            peer = auth.authenticateClient(socket, PeerAuthenticator.Purpose.HANDSHAKE, limits.ioTimeout());
        } catch (MooncakeException e) {
            if (!closed.get()) {
                unauthenticated.increment();
                warnings.warn(
                        "unauthenticated",
                        "{}: refused the connection from {}: {} ({} refused so far)",
                        name,
                        remote,
                        e.getMessage(),
                        unauthenticated.sum());
            }
            return;
        }
        FrameDeadline guard = new FrameDeadline(socket);
        boolean first = true;
        while (!closed.get()) {
            try {
                if (!awaitFrame(socket, in, first)) {
                    return;
                }
            } catch (IOException e) {
                return; // reset or closed between frames: nothing was lost
            }
            first = false;
            guard.start();
            HandshakeFrame request;
            try {
                request = HandshakeCodec.read(in, limits.maxFrameLength(), guard);
            } catch (MalformedFrameException e) {
                rejected(remote, e.getMessage());
                return;
            } catch (SocketTimeoutException e) {
                rejected(
                        remote,
                        "frame not complete " + ioTimeoutMillis + " ms after its first byte");
                return;
            } catch (IOException e) {
                if (!closed.get()) {
                    rejected(remote, "connection failed mid-frame: " + e);
                }
                return;
            }
            if (request == null) {
                return; // the peer closed the connection: the normal end
            }
            JsonObject reply = answer(request, remote, peer);
            if (reply == null) {
                return;
            }
            byte[] bytes;
            try {
                bytes = HandshakeCodec.encode(request.reply(reply));
            } catch (MooncakeException e) {
                handlerFailed(request, remote, "its reply cannot be encoded: " + e.getMessage());
                return;
            }
            if (bytes.length - HandshakeCodec.LENGTH_BYTES > limits.maxFrameLength()) {
                handlerFailed(
                        request,
                        remote,
                        "its reply of "
                                + (bytes.length - HandshakeCodec.LENGTH_BYTES)
                                + " bytes exceeds the handshake limit of "
                                + limits.maxFrameLength()
                                + " (MC_HANDSHAKE_MAX_LENGTH)");
                return;
            }
            if (!write(socket, out, bytes)) {
                return;
            }
            framesServed.increment();
        }
    }

    /** The handler's reply; for a failure, a refusal (Connection) or null (close). */
    private JsonObject answer(HandshakeFrame request, InetSocketAddress remote, String peer) {
        JsonObject reply;
        try {
            reply = handler.handle(request.type(), request.body(), remote, peer);
        } catch (RuntimeException | StackOverflowError e) {
            String why = e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
            // A MooncakeException is an expected refusal; anything else is a bug: keep its trace,
            // except for a stack overflow, whose trace would be a thousand lines.
            boolean bug = !(e instanceof MooncakeException || e instanceof StackOverflowError);
            handlerFailed(request, remote, why, bug ? e : null);
            return request.type() == HandshakeFrame.CONNECTION
                    ? HandshakeMessages.connectionRefused("handshake refused: " + why)
                    : null;
        }
        if (reply == null) {
            handlerFailed(request, remote, "the handler returned no reply");
            return request.type() == HandshakeFrame.CONNECTION
                    ? HandshakeMessages.connectionRefused("handshake refused: no reply")
                    : null;
        }
        return reply;
    }

    private void handlerFailed(HandshakeFrame request, InetSocketAddress remote, String why) {
        handlerFailed(request, remote, why, null);
    }

    /** Counts and logs a failed request, with {@code bug}'s stack trace when there is one. */
    private void handlerFailed(
            HandshakeFrame request, InetSocketAddress remote, String why, Throwable bug) {
        handlerFailures.increment();
        Object[] args = {
            name,
            HandshakeFrame.typeName(request.type()),
            remote,
            request.type() == HandshakeFrame.CONNECTION ? "refused" : "connection closed",
            handlerFailures(),
            why,
            bug
        };
        warnings.warn(
                "handler",
                "{}: {} request from {} failed ({}; {} failures so far): {}",
                bug == null ? Arrays.copyOf(args, args.length - 1) : args);
    }

    private void rejected(InetSocketAddress remote, String why) {
        framesRejected.increment();
        warnings.warn(
                "malformed",
                "{}: closed the connection from {}: {} ({} rejected so far)",
                name,
                remote,
                why,
                framesRejected());
    }

    /** Writes a reply; a peer that does not read it within the I/O timeout loses its connection. */
    private boolean write(Socket socket, OutputStream out, byte[] bytes) {
        ScheduledFuture<?> kill;
        try {
            kill =
                    writeWatchdog.schedule(
                            () -> closeQuietly(socket), ioTimeoutNanos, TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException e) {
            return false; // closing
        }
        try {
            out.write(bytes);
            out.flush();
            return true;
        } catch (IOException e) {
            if (!closed.get()) {
                repliesFailed.increment();
                warnings.warn(
                        "reply",
                        "{}: the reply to {} was not written (reset, or not read within {} ms):"
                                + " {}; {} so far",
                        name,
                        socket.getRemoteSocketAddress(),
                        ioTimeoutMillis,
                        e.toString(),
                        repliesFailed());
            }
            return false;
        } finally {
            kill.cancel(false);
        }
    }

    /**
     * Waits for the first byte of the next frame (and pushes it back). Returns false to end the
     * connection: the peer closed it, it stayed idle for the I/O timeout, or, after its first
     * frame, other connections are queued for a thread. A kept-alive connection must not starve new
     * ones; Mooncake's client reconnects for every call anyway.
     */
    private boolean awaitFrame(Socket socket, PushbackInputStream in, boolean first)
            throws IOException {
        long idleDeadline = System.nanoTime() + ioTimeoutNanos;
        while (!closed.get()) {
            if (!first && !workers.getQueue().isEmpty()) {
                return false;
            }
            long remaining = idleDeadline - System.nanoTime();
            if (remaining <= 0) {
                return false;
            }
            socket.setSoTimeout(
                    (int)
                            Math.max(
                                    1,
                                    Math.min(
                                            IDLE_POLL_MILLIS,
                                            TimeUnit.NANOSECONDS.toMillis(remaining))));
            try {
                int b = in.read();
                if (b < 0) {
                    return false;
                }
                in.unread(b);
                return true;
            } catch (SocketTimeoutException e) {
                // poll again: re-check the deadline and the queue
            }
        }
        return false;
    }

    /**
     * A frame's deadline: once its first byte is in, the whole frame must arrive within the I/O
     * timeout, however slowly it trickles in.
     */
    private final class FrameDeadline implements HandshakeCodec.ReadGuard {
        private final Socket socket;
        private long deadline;

        FrameDeadline(Socket socket) {
            this.socket = socket;
        }

        void start() {
            deadline = System.nanoTime() + ioTimeoutNanos;
        }

        @Override
        public void beforeRead(long bytesSoFar) throws IOException {
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0) {
                throw new SocketTimeoutException("frame deadline passed");
            }
            // Round up: SO_TIMEOUT 0 would mean forever.
            socket.setSoTimeout(
                    (int)
                            Math.max(
                                    1,
                                    Math.min(
                                            ioTimeoutMillis,
                                            TimeUnit.NANOSECONDS.toMillis(remaining + 999_999))));
        }
    }

    private static ServerSocket bind(String bindHost, int minPort, int maxPort) {
        if (minPort < 0 || maxPort > 65535 || minPort > maxPort) {
            throw new MooncakeException(
                    ErrorCode.CONFIGURATION,
                    "handshake port range ["
                            + minPort
                            + ", "
                            + maxPort
                            + "] is invalid: need 0 <= min <= max <= 65535 (MC_MIN_RPC_PORT,"
                            + " MC_MAX_RPC_PORT)");
        }
        InetAddress address = null;
        if (bindHost != null && !bindHost.isEmpty()) {
            try {
                address = InetAddress.getByName(bindHost);
            } catch (UnknownHostException e) {
                throw new MooncakeException(
                        ErrorCode.CONFIGURATION,
                        "cannot resolve the handshake server's bind address '" + bindHost + "'",
                        e);
            }
        }
        if (maxPort == 0) {
            try {
                return tryBind(address, 0);
            } catch (IOException e) {
                throw bindFailed(bindHost, e);
            }
        }
        int low = Math.max(1, minPort);
        List<Integer> ports = new ArrayList<>(maxPort - low + 1);
        for (int p = low; p <= maxPort; p++) {
            ports.add(p);
        }
        Collections.shuffle(ports, ThreadLocalRandom.current());
        boolean addressChecked = false;
        IOException last = null;
        for (int p : ports) {
            try {
                return tryBind(address, p);
            } catch (BindException e) {
                last = e;
                if (!addressChecked) {
                    // If even an OS-chosen port fails, the address is the problem, not the range:
                    // say so now rather than after trying every port.
                    addressChecked = true;
                    try {
                        tryBind(address, 0).close();
                    } catch (IOException addressProblem) {
                        throw bindFailed(bindHost, addressProblem);
                    }
                }
            } catch (IOException e) {
                throw bindFailed(bindHost, e);
            }
        }
        throw new MooncakeException(
                ErrorCode.IO,
                "no free port for the handshake server in ["
                        + low
                        + ", "
                        + maxPort
                        + "]"
                        + (bindHost == null ? "" : " on " + bindHost)
                        + ": every port is in use or forbidden; widen"
                        + " MC_MIN_RPC_PORT/MC_MAX_RPC_PORT",
                last);
    }

    private static ServerSocket tryBind(InetAddress address, int port) throws IOException {
        // From a channel, so that the acceptor can wait for first bytes in a selector.
        ServerSocket ss = ServerSocketChannel.open().socket();
        try {
            ss.setReuseAddress(true);
            ss.bind(new InetSocketAddress(address, port), ACCEPT_BACKLOG);
            return ss;
        } catch (IOException | RuntimeException e) {
            closeQuietly(ss);
            throw e;
        }
    }

    private static MooncakeException bindFailed(String bindHost, IOException e) {
        return new MooncakeException(
                ErrorCode.IO,
                "cannot start the handshake server on "
                        + (bindHost == null ? "the wildcard address" : bindHost)
                        + ": "
                        + e.getMessage(),
                e);
    }


    private static ThreadFactory daemonThreads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    static void closeQuietly(Closeable c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // nothing to do: the resource is gone either way
        }
    }
}
