package io.mooncake4j.internal.handshake;

import com.google.gson.JsonObject;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;

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
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
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
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * The handshake server: answers Connection, Metadata, Notify and Probe frames through a {@link
 * HandshakeHandler}.
 *
 * <p>Unlike Mooncake's server (one thread, one connection at a time, so 32+ peers opening segments
 * at once see refusals), this one serves many peers at once and bounds what each may cost:
 *
 * <ul>
 *   <li>one acceptor thread hands each connection to a pool of at most {@code maxHandlerThreads}
 *       threads (128 by default) with a queue of at most {@code maxQueuedConnections} (512); beyond
 *       that a connection is closed at once, so its client fails fast instead of waiting out its
 *       timeout, and {@link #connectionsRejected()} counts it;
 *   <li>every frame is bounded in size ({@code maxFrameLength}) and in time: a connection may sit
 *       idle for {@code ioTimeout} before a frame, and a frame must be complete {@code ioTimeout}
 *       after its first byte, so a peer trickling one byte a second is cut off; replies are written
 *       under the same deadline;
 *   <li>a connection may carry several frames, each answered in order (Mooncake's client opens one
 *       per call and closes it after the reply, which ends the loop); between frames it gives up
 *       its thread as soon as other connections are queued, so kept-alive connections cannot starve
 *       new ones;
 *   <li>a malformed frame (bad length, not UTF-8, not a JSON object) closes that connection and is
 *       counted in {@link #framesRejected()}; nothing a peer sends can stop the server.
 * </ul>
 *
 * <p>{@link #close()} is idempotent: it stops accepting, closes every connection, and waits briefly
 * for handlers to return.
 */
public final class HandshakeServer implements AutoCloseable {
    /** Default most connections served at once. */
    public static final int DEFAULT_MAX_HANDLER_THREADS = 128;

    /** Default most accepted connections waiting for a handler thread. */
    public static final int DEFAULT_MAX_QUEUED_CONNECTIONS = 512;

    private static final Logger LOG = LoggerFactory.getLogger(HandshakeServer.class);
    private static final int ACCEPT_BACKLOG = 1024;
    private static final long CLOSE_GRACE_MILLIS = 2000;
    private static final long IDLE_POLL_MILLIS = 50;
    private static final long WARN_INTERVAL_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final ServerSocket serverSocket;
    private final int port;
    private final int maxFrameLength;
    private final long ioTimeoutNanos;
    private final int ioTimeoutMillis;
    private final HandshakeHandler handler;
    private final ThreadPoolExecutor workers;
    private final ScheduledThreadPoolExecutor writeWatchdog;
    private final Thread acceptor;
    private final Set<Socket> open = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean closed = new AtomicBoolean();

    private final LongAdder framesServed = new LongAdder();
    private final LongAdder framesRejected = new LongAdder();
    private final LongAdder handlerFailures = new LongAdder();
    private final LongAdder connectionsAccepted = new LongAdder();
    private final LongAdder connectionsRejected = new LongAdder();
    private final AtomicLong lastRejectWarn =
            new AtomicLong(System.nanoTime() - WARN_INTERVAL_NANOS);
    private final AtomicLong lastMalformedWarn =
            new AtomicLong(System.nanoTime() - WARN_INTERVAL_NANOS);

    private HandshakeServer(
            ServerSocket serverSocket,
            int maxFrameLength,
            Duration ioTimeout,
            HandshakeHandler handler,
            int maxHandlerThreads,
            int maxQueuedConnections) {
        this.serverSocket = serverSocket;
        this.port = serverSocket.getLocalPort();
        this.maxFrameLength = maxFrameLength;
        this.ioTimeoutNanos = ioTimeout.toNanos();
        this.ioTimeoutMillis = (int) Math.max(1, Math.min(Integer.MAX_VALUE, ioTimeout.toMillis()));
        this.handler = handler;
        String prefix = "mooncake4j-handshake-" + port;
        this.workers =
                new ThreadPoolExecutor(
                        maxHandlerThreads,
                        maxHandlerThreads,
                        30,
                        TimeUnit.SECONDS,
                        new ArrayBlockingQueue<>(maxQueuedConnections),
                        daemonThreads(prefix + "-handler-"));
        workers.allowCoreThreadTimeOut(true);
        this.writeWatchdog =
                new ScheduledThreadPoolExecutor(1, daemonThreads(prefix + "-watchdog-"));
        writeWatchdog.setRemoveOnCancelPolicy(true);
        writeWatchdog.allowCoreThreadTimeOut(true);
        writeWatchdog.setKeepAliveTime(10, TimeUnit.SECONDS);
        this.acceptor = new Thread(this::acceptLoop, prefix + "-accept");
        acceptor.setDaemon(true);
    }

    /**
     * Binds and starts a server with the default thread and queue limits.
     *
     * @param bindHost the local address to listen on; null or empty for every address
     * @param minPort lowest port to try
     * @param maxPort highest port to try; {@code minPort == maxPort == 0} lets the OS choose
     * @param maxFrameLength largest frame accepted or sent, in bytes (type byte plus JSON)
     * @param ioTimeout how long a connection may idle before a frame, and how long a frame may take
     *     to arrive once started, or a reply to be written
     * @param handler answers requests, from many threads at once
     * @throws MooncakeException {@code IO} if no port in the range is free, {@code CONFIGURATION}
     *     for a bad range or bind address
     */
    public static HandshakeServer start(
            String bindHost,
            int minPort,
            int maxPort,
            int maxFrameLength,
            Duration ioTimeout,
            HandshakeHandler handler) {
        return start(
                bindHost,
                minPort,
                maxPort,
                maxFrameLength,
                ioTimeout,
                handler,
                DEFAULT_MAX_HANDLER_THREADS,
                DEFAULT_MAX_QUEUED_CONNECTIONS);
    }

    /**
     * As {@link #start(String, int, int, int, Duration, HandshakeHandler)}, with explicit limits.
     */
    public static HandshakeServer start(
            String bindHost,
            int minPort,
            int maxPort,
            int maxFrameLength,
            Duration ioTimeout,
            HandshakeHandler handler,
            int maxHandlerThreads,
            int maxQueuedConnections) {
        Objects.requireNonNull(handler, "handler");
        Objects.requireNonNull(ioTimeout, "ioTimeout");
        if (maxFrameLength < 2) {
            throw invalid("maxFrameLength must be at least 2, got " + maxFrameLength);
        }
        if (ioTimeout.isNegative() || ioTimeout.isZero()) {
            throw invalid("ioTimeout must be positive, got " + ioTimeout);
        }
        if (maxHandlerThreads < 1 || maxQueuedConnections < 1) {
            throw invalid(
                    "maxHandlerThreads and maxQueuedConnections must be at least 1, got "
                            + maxHandlerThreads
                            + " and "
                            + maxQueuedConnections);
        }
        ServerSocket ss = bind(bindHost, minPort, maxPort);
        HandshakeServer server;
        try {
            server =
                    new HandshakeServer(
                            ss,
                            maxFrameLength,
                            ioTimeout,
                            handler,
                            maxHandlerThreads,
                            maxQueuedConnections);
            server.acceptor.start();
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

    /** Requests answered. */
    public long framesServed() {
        return framesServed.sum();
    }

    /**
     * Frames refused: bad length, not UTF-8, not a JSON object, truncated, or not complete in time.
     * Each closed its connection.
     */
    public long framesRejected() {
        return framesRejected.sum();
    }

    /** Requests whose handler threw or returned null. */
    public long handlerFailures() {
        return handlerFailures.sum();
    }

    /** Connections accepted from the OS (including those then rejected). */
    public long connectionsAccepted() {
        return connectionsAccepted.sum();
    }

    /** Connections closed unread because every handler thread was busy and the queue full. */
    public long connectionsRejected() {
        return connectionsRejected.sum();
    }

    /** Connections open now (being served or queued). */
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
        closeQuietly(serverSocket);
        workers.shutdown();
        // Blocking socket reads ignore interrupts: closing the sockets is what frees the threads.
        // Queued connections are in the set too, so their tasks find a closed socket and return.
        for (Socket s : open) {
            closeQuietly(s);
        }
        boolean interrupted = false;
        try {
            acceptor.join(CLOSE_GRACE_MILLIS);
            if (!workers.awaitTermination(CLOSE_GRACE_MILLIS, TimeUnit.MILLISECONDS)) {
                LOG.warn(
                        "handshake server on port {}: {} handler(s) still running {} ms after"
                                + " close; interrupting them",
                        port,
                        workers.getActiveCount(),
                        CLOSE_GRACE_MILLIS);
                workers.shutdownNow();
            }
        } catch (InterruptedException e) {
            interrupted = true;
            workers.shutdownNow();
        } finally {
            writeWatchdog.shutdownNow();
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        LOG.debug(
                "handshake server on port {} closed: {} frames served, {} rejected, {} connections"
                        + " rejected, {} handler failures",
                port,
                framesServed(),
                framesRejected(),
                connectionsRejected(),
                handlerFailures());
    }

    @Override
    public String toString() {
        return "HandshakeServer["
                + serverSocket.getLocalSocketAddress()
                + (closed.get() ? ", closed]" : "]");
    }

    private void acceptLoop() {
        while (!closed.get()) {
            Socket socket;
            try {
                socket = serverSocket.accept();
            } catch (IOException e) {
                if (closed.get()) {
                    return;
                }
                // Typically EMFILE: back off instead of spinning, and keep serving.
                LOG.warn("handshake server on port {}: accept failed: {}", port, e.toString());
                sleepQuietly(50);
                continue;
            }
            connectionsAccepted.increment();
            open.add(socket);
            if (closed.get()) {
                // close() may have swept the set before this socket was added.
                open.remove(socket);
                closeQuietly(socket);
                return;
            }
            try {
                workers.execute(new Connection(socket));
            } catch (RejectedExecutionException e) {
                open.remove(socket);
                if (closed.get()) {
                    closeQuietly(socket);
                    return;
                }
                connectionsRejected.increment(); // before the close the peer sees, so counts agree
                closeQuietly(socket);
                if (shouldWarn(lastRejectWarn)) {
                    LOG.warn(
                            "handshake server on port {} is saturated ({} connections being served,"
                                + " {} queued): closed a connection from {} unread; {} refused so"
                                + " far",
                            port,
                            workers.getActiveCount(),
                            workers.getQueue().size(),
                            socket.getRemoteSocketAddress(),
                            connectionsRejected());
                }
            }
        }
    }

    private final class Connection implements Runnable {
        private final Socket socket;

        Connection(Socket socket) {
            this.socket = socket;
        }

        @Override
        public void run() {
            try {
                serve(socket);
            } catch (RuntimeException | Error e) {
                LOG.error(
                        "handshake server on port {}: connection from {} failed",
                        port,
                        socket.getRemoteSocketAddress(),
                        e);
                if (e instanceof Error) {
                    throw (Error) e;
                }
            } finally {
                open.remove(socket);
                closeQuietly(socket);
            }
        }
    }

    private void serve(Socket socket) {
        InetSocketAddress remote = (InetSocketAddress) socket.getRemoteSocketAddress();
        PushbackInputStream in;
        OutputStream out;
        try {
            socket.setTcpNoDelay(true);
            in = new PushbackInputStream(socket.getInputStream(), 1);
            out = socket.getOutputStream();
        } catch (IOException e) {
            return; // closed by close() while queued, or reset by the peer
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
                request = HandshakeCodec.read(in, maxFrameLength, guard);
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
            JsonObject reply = answer(request, remote);
            if (reply == null) {
                return;
            }
            byte[] bytes;
            try {
                bytes = HandshakeCodec.encode(request.reply(reply));
            } catch (MooncakeException e) {
                handlerFailed(
                        request, remote, "its reply cannot be encoded: " + e.getMessage(), null);
                return;
            }
            if (bytes.length - HandshakeCodec.LENGTH_BYTES > maxFrameLength) {
                handlerFailed(
                        request,
                        remote,
                        "its reply of "
                                + (bytes.length - HandshakeCodec.LENGTH_BYTES)
                                + " bytes exceeds the handshake limit of "
                                + maxFrameLength
                                + " (MC_HANDSHAKE_MAX_LENGTH)",
                        null);
                return;
            }
            if (!write(socket, out, bytes)) {
                return;
            }
            framesServed.increment();
        }
    }

    /** The handler's reply; for a failure, a refusal (Connection) or null (close). */
    private JsonObject answer(HandshakeFrame request, InetSocketAddress remote) {
        JsonObject reply;
        try {
            reply = handler.handle(request.type(), request.body(), remote);
        } catch (RuntimeException e) {
            String why = e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
            handlerFailed(request, remote, why, e);
            return request.type() == HandshakeFrame.CONNECTION
                    ? HandshakeMessages.connectionRefused("handshake refused: " + why)
                    : null;
        }
        if (reply == null) {
            handlerFailed(request, remote, "the handler returned no reply", null);
            return request.type() == HandshakeFrame.CONNECTION
                    ? HandshakeMessages.connectionRefused("handshake refused: no reply")
                    : null;
        }
        return reply;
    }

    private void handlerFailed(
            HandshakeFrame request, InetSocketAddress remote, String why, RuntimeException e) {
        handlerFailures.increment();
        String what = HandshakeFrame.typeName(request.type());
        String outcome =
                request.type() == HandshakeFrame.CONNECTION ? "refused" : "connection closed";
        if (e == null || e instanceof MooncakeException) {
            LOG.warn(
                    "handshake server on port {}: {} request from {} failed ({}): {}",
                    port,
                    what,
                    remote,
                    outcome,
                    why);
        } else {
            LOG.error(
                    "handshake server on port {}: {} request from {} failed ({})",
                    port,
                    what,
                    remote,
                    outcome,
                    e);
        }
    }

    private void rejected(InetSocketAddress remote, String why) {
        framesRejected.increment();
        if (shouldWarn(lastMalformedWarn)) {
            LOG.warn(
                    "handshake server on port {}: closed the connection from {}: {} ({} rejected so"
                            + " far; more are logged at debug level)",
                    port,
                    remote,
                    why,
                    framesRejected());
        } else {
            LOG.debug(
                    "handshake server on port {}: closed the connection from {}: {}",
                    port,
                    remote,
                    why);
        }
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
            LOG.debug(
                    "handshake server on port {}: reply to {} failed: {}",
                    port,
                    socket.getRemoteSocketAddress(),
                    e.toString());
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
        ServerSocket ss = new ServerSocket();
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

    private static MooncakeException invalid(String message) {
        return new MooncakeException(ErrorCode.INVALID_ARGUMENT, message);
    }

    private static boolean shouldWarn(AtomicLong last) {
        long now = System.nanoTime();
        long prev = last.get();
        return now - prev >= WARN_INTERVAL_NANOS && last.compareAndSet(prev, now);
    }

    private static ThreadFactory daemonThreads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static void closeQuietly(Closeable c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // nothing to do: the resource is gone either way
        }
    }
}
