package io.mooncake4j.transport.tcp;

import io.mooncake4j.MemoryRegion;
import io.mooncake4j.spi.RateLimitedLog;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.LocalMemory;
import io.mooncake4j.spi.PeerAuthenticator;
import io.mooncake4j.spi.PinnedRegion;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The target side: serves peers' READ and WRITE requests on the data port, one thread per connection
 * (a peer keeps a few persistent connections, so threads stay few). Threads and staging memory are
 * pooled, so that a peer that opens a connection per request (Mooncake's default initiator) pays
 * neither a thread start nor a buffer allocation per request.
 *
 * <p>Each request is checked with {@link LocalMemory#pin} before any byte of memory is touched; the
 * pin is held for the I/O only. Bytes move between the socket and registered memory through direct
 * views; small frames and payloads go through a per-connection staging buffer so that one system
 * call carries many of them. Replies are answered in order and flushed before the next blocking read.
 * A request on a GPU ({@code cuda:N}) region is staged through the connection's {@link DevicePipe}
 * (pinned chunks, asynchronous copies overlapped with the socket); a WRITE's status frame follows
 * only once its bytes are in device memory.
 *
 * <p>Bounds, enforced by {@link #sweep} (which the transport's watchdog calls): a connection waits at
 * most {@code MC_TCP_IDLE_TIMEOUT} for a request, a request (and the pin it holds) lasts at most
 * {@code MC_TCP_REQUEST_TIMEOUT} and must move a byte every {@code MC_TCP_STALL_TIMEOUT}. At {@code
 * MC_TCP_MAX_SERVED_CONNECTIONS}, a new connection replaces the one idle the longest. Peers' misuse
 * (refused and evicted connections, rejected ranges, protocol errors, timeouts) is counted and logged
 * at most every {@value #LOG_INTERVAL_SECONDS} s per kind, with the peer's address.
 *
 * <p>With a secret set ({@link PeerAuthenticator#isEnabled()}), a connection must complete the
 * authentication exchange within {@code MC_HANDSHAKE_CONNECT_TIMEOUT} before its first header is read; one
 * that does not is closed without a byte of reply (counted as {@code unauthenticated_connections}).
 */
final class TcpServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(TcpServer.class);
    static final int LOG_INTERVAL_SECONDS = 10;
    private static final Duration LOG_INTERVAL = Duration.ofSeconds(LOG_INTERVAL_SECONDS);

    /** A rejected WRITE payload up to this size is read and dropped to keep the stream in sync. */
    static final long DISCARD_MAX = 64L << 20;
    /** Staging sets kept for reuse by new connections (the rest is unmapped when a connection ends). */
    static final int MAX_IDLE_STAGING = 64;
    /** Seconds an idle serving thread waits for a new connection before it ends. */
    static final int THREAD_KEEP_ALIVE_SECONDS = 60;
    /** Payloads from this size on move directly between the socket and memory. */
    private static final int DIRECT_MIN = 64 << 10;
    /** READ payloads up to this size are copied into the reply buffer (batched with status frames). */
    private static final int COPY_MAX = 32 << 10;
    private static final int MAX_IOV = 64;
    private static final int MAX_HELD = 32;
    private static final long FLUSH_BYTES = 16L << 20;
    /** Replies queued while this many payload bytes came in are sent before the next blocking read. */
    private static final long REPLY_LAG_BYTES = 1L << 20;

    private final LocalMemory memory;
    private final PeerAuthenticator auth;
    private final TcpSettings settings;
    private final TcpCounters counters;
    private final ServerSocketChannel server;
    private final ThreadPoolExecutor threads;
    /** The pool's threads, dead ones pruned as new ones start: joined on close. */
    private final Set<Thread> servingThreads = ConcurrentHashMap.newKeySet();
    private final StagingPool staging = new StagingPool(MAX_IDLE_STAGING, MAX_IOV);
    private final DeviceStaging deviceStaging;
    private final Set<Served> connections = ConcurrentHashMap.newKeySet();
    /** Connections served and not yet killed (killed ones leave {@link #connections} as their thread ends). */
    private final AtomicInteger open = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final int port;
    private final RateLimitedLog warnings = new RateLimitedLog(LOG, LOG_INTERVAL);

    TcpServer(LocalMemory memory, PeerAuthenticator auth, TcpSettings settings, TcpCounters counters,
            DeviceStaging deviceStaging) throws IOException {
        this.memory = memory;
        this.deviceStaging = deviceStaging;
        this.auth = auth;
        this.settings = settings;
        this.counters = counters;
        ServerSocketChannel ch = ServerSocketChannel.open();
        try {
            ch.setOption(StandardSocketOptions.SO_REUSEADDR, true);
            if (settings.socketBuffer > 0) {
                // set before bind so that the window scale of accepted connections allows it
                ch.setOption(StandardSocketOptions.SO_RCVBUF, settings.socketBuffer);
            }
            ch.bind(new InetSocketAddress(settings.bindAddress, settings.dataPort), 1024);
            this.port = ((InetSocketAddress) ch.getLocalAddress()).getPort();
        } catch (IOException | RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
        this.server = ch;
        AtomicInteger serial = new AtomicInteger();
        // one thread per connection plus the accepting one, kept a while for the next connection;
        // killed connections end promptly, so twice the cap leaves room for those still ending
        this.threads =
                new ThreadPoolExecutor(
                        0,
                        2 * settings.maxServedConnections + 1,
                        THREAD_KEEP_ALIVE_SECONDS,
                        TimeUnit.SECONDS,
                        new SynchronousQueue<>(),
                        r -> {
                            Thread t = new Thread(r, "mc-tcp-serve-" + port + "-" + serial.incrementAndGet());
                            t.setDaemon(true);
                            servingThreads.removeIf(old -> !old.isAlive());
                            servingThreads.add(t);
                            return t;
                        });
        try {
            threads.execute(this::acceptLoop);
        } catch (RuntimeException | Error e) {
            closeQuietly(ch);
            threads.shutdown();
            throw e;
        }
    }

    int port() {
        return port;
    }

    /** Staging memory mapped now, in bytes (idle sets kept for reuse included). */
    long stagingBytes() {
        return staging.mappedBytes();
    }

    /** Connections being served (killed ones until their thread ends). */
    int connectionCount() {
        return connections.size();
    }

    /** Threads serving a connection or accepting one (idle pooled threads not counted). */
    int busyThreads() {
        return threads.getActiveCount();
    }

    /**
     * Accepts connections on a pooled thread until one is admitted, then hands accepting to another
     * pooled thread and serves that connection itself: the thread wake-up of the hand-off overlaps
     * the first request instead of delaying it (leader/followers).
     */
    private void acceptLoop() {
        while (!closed.get()) {
            SocketChannel ch;
            try {
                ch = server.accept();
            } catch (ClosedChannelException e) {
                break;
            } catch (IOException e) {
                if (closed.get()) {
                    break;
                }
                LOG.warn("TCP data server on port {}: accept failed: {}", port, e.toString());
                sleepQuietly(10);
                continue;
            } catch (RuntimeException | Error e) {
                // e.g. OutOfMemoryError: keep accepting; the next connection may be served
                LOG.error("TCP data server on port {}: accept failed unexpectedly", port, e);
                sleepQuietly(10);
                continue;
            }
            Served s;
            try {
                s = admit(ch);
            } catch (IOException | RuntimeException | OutOfMemoryError e) {
                refuse(ch, "cannot serve it: " + e);
                continue;
            }
            if (s == null) {
                continue;
            }
            try {
                threads.execute(this::acceptLoop);
            } catch (RejectedExecutionException | OutOfMemoryError e) {
                s.close("no thread to accept");
                connections.remove(s);
                counters.servedConnections.decrement();
                refuse(ch, "no thread to take over accepting (" + threads.getPoolSize() + " threads): " + e);
                continue; // this thread stays the acceptor
            }
            s.run();
            return;
        }
    }

    /** The connection to serve, or null when it was refused or the server closed. */
    private Served admit(SocketChannel ch) throws IOException {
        String peer = String.valueOf(ch.getRemoteAddress());
        if (open.get() >= settings.maxServedConnections && !evictIdlest(peer)) {
            refuse(ch, settings.maxServedConnections + " connections (" + TcpSettings.MAX_SERVED_CONNECTIONS
                    + ") are all in the middle of a request");
            return null;
        }
        ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
        ch.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
        if (settings.socketBuffer > 0) {
            ch.setOption(StandardSocketOptions.SO_SNDBUF, settings.socketBuffer);
        }
        Served s = new Served(ch, peer);
        connections.add(s);
        open.incrementAndGet();
        if (closed.get()) {
            s.close("server closed");
            connections.remove(s);
            return null;
        }
        counters.servedConnections.increment();
        return s;
    }

    private void refuse(SocketChannel ch, String why) {
        counters.refusedConnections.increment();
        String peer = "?";
        try {
            peer = String.valueOf(ch.getRemoteAddress());
        } catch (IOException | RuntimeException e) {
            // the peer is gone already
        }
        closeQuietly(ch);
        warnings.warn("refused", "TCP data server on port {}: refused a connection from {}: {}", port, peer, why);
    }

    /** Kills the served connection idle the longest, for {@code newcomer}; false when none is idle. */
    private boolean evictIdlest(String newcomer) {
        Served victim = null;
        for (Served s : connections) {
            if (!s.busy && !s.dead.get() && (victim == null || s.idleSince - victim.idleSince < 0)) {
                victim = s;
            }
        }
        if (victim == null) {
            return false;
        }
        long idleMs = (System.nanoTime() - victim.idleSince) / 1_000_000;
        if (victim.close("evicted")) {
            counters.evictedConnections.increment();
            warnings.warn("evicted",
                    "TCP data server on port {}: closed the connection from {}, idle for {} ms, to serve {}: {}"
                            + " connections is the limit ({})",
                    port, victim.peer, idleMs, newcomer, settings.maxServedConnections,
                    TcpSettings.MAX_SERVED_CONNECTIONS);
        }
        return true;
    }

    /**
     * Closes the connections that broke a bound: a stalled or overdue request, or an idle connection
     * past the idle timeout. Called periodically by the transport's watchdog.
     */
    void sweep(long now) {
        for (Served s : connections) {
            String why = null;
            LongAdder counter = null;
            if (s.busy) {
                if (now - s.lastProgress() > settings.stallTimeoutNanos) {
                    why = "no byte moved for " + settings.stallTimeoutNanos / 1_000_000 + " ms during a request ("
                            + TcpSettings.STALL_TIMEOUT + ")";
                    counter = counters.stalls;
                } else if (now - s.requestStart > settings.requestTimeoutNanos) {
                    why = "a request took more than " + settings.requestTimeoutNanos / 1_000_000 + " ms ("
                            + TcpSettings.REQUEST_TIMEOUT + ")";
                    counter = counters.requestTimeouts;
                }
            } else if (now - s.idleSince > settings.idleTimeoutNanos) {
                why = "no request for " + settings.idleTimeoutNanos / 1_000_000 + " ms (" + TcpSettings.IDLE_TIMEOUT + ")";
                counter = counters.idleTimeouts;
            }
            if (why != null && s.close(why)) {
                counter.increment();
                warnings.warn("timedOut", "TCP data server on port {}: closed the connection from {}: {}", port, s.peer, why);
            }
        }
    }

    /**
     * Closes the connections whose requests hold pins on {@code region}, so that the pins are
     * released and the region can be freed (see {@link io.mooncake4j.spi.Transport#unregisterRegion}).
     * Returns how many it closed.
     */
    int stopUsersOf(MemoryRegion region) {
        int n = 0;
        for (Served s : connections) {
            if (s.holds(region) && s.close("memory unregistered")) {
                counters.unregisterKills.increment();
                LOG.warn(
                        "TCP data server on port {}: closed the connection from {}: its request still used {},"
                                + " which is being unregistered",
                        port, s.peer, region);
                n++;
            }
        }
        return n;
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        closeQuietly(server); // ends the accepting thread
        for (Served s : connections) {
            s.kill("server closed");
        }
        threads.shutdown();
        try {
            if (!threads.awaitTermination(5, TimeUnit.SECONDS)) {
                LOG.warn("TCP data server on port {}: {} serving threads still running 5 s after close",
                        port, threads.getActiveCount());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        // the pool reports termination from inside its last thread's exit: once close returns, none of
        // this server's threads is alive (a container reloading the engine counts them)
        for (Thread t : servingThreads) {
            join(t);
        }
        staging.close();
    }

    /** One peer connection, served by the pooled thread that accepted it. */
    private final class Served extends Watched implements Runnable {
        private final SocketChannel ch;
        final String peer;
        final AtomicBoolean dead = new AtomicBoolean();
        // staging memory, from the pool when the thread starts
        private InputStage in;
        private ByteBuffer out;
        private long outAddress;
        // replies are gathered: runs of `out` (status frames, small payloads) between views of
        // memory (large READ payloads, whose pins are held until the write is done)
        private ByteBuffer[] outCopies;
        private final ByteBuffer[] iov = new ByteBuffer[MAX_IOV];
        private final PinnedRegion[] held = new PinnedRegion[MAX_HELD];
        private WindowCache views;
        /** GPU memory is staged through it; acquired on the first such request, released when the connection ends. */
        private DevicePipe pipe;
        /**
         * The pin of a GPU WRITE whose payload is read and whose last copies may still run: its
         * status frame waits for them ({@link #settleWrite}), while the next request is read.
         */
        private volatile PinnedRegion unsettled;
        private long unsettledAddr;
        private long unsettledSize;
        /** The socket's bytes ready to read, without blocking; made on the first GPU WRITE. */
        private java.io.InputStream readable;
        /** A request is in progress (silence means a stall; the request deadline runs). */
        volatile boolean busy;
        /** When the request in progress started. */
        volatile long requestStart;
        /** When the connection last became idle (waiting for a request header). */
        volatile long idleSince = System.nanoTime();
        /** The pin of the request in progress, for {@link #holds}. */
        private volatile PinnedRegion current;
        private int opos;
        private int runStart;
        private int iovCount;
        private volatile int heldCount;
        private long pendingBytes;
        // the last WRITE payload was large: read only the next header, so that a large payload
        // after it goes straight to memory instead of through the stage (one copy less)
        private boolean exactHeader = true; // the first request's payload may be large too
        private long receivedSinceReply; // payload bytes received since the oldest unsent reply

        Served(SocketChannel ch, String peer) {
            this.ch = ch;
            this.peer = peer;
        }

        @Override
        boolean busy() {
            return busy;
        }

        @Override
        void kill(String reason) {
            close(reason);
        }

        /** Closes the connection; its thread then ends and releases its pins. Returns whether this call did. */
        boolean close(String reason) {
            if (dead.compareAndSet(false, true)) {
                open.decrementAndGet();
                closeQuietly(ch);
                return true;
            }
            return false;
        }

        /** Whether the request in progress, or a reply not yet written, holds a pin on {@code region}. */
        boolean holds(MemoryRegion region) {
            PinnedRegion p = current;
            if (p != null && p.region().address() == region.address()) {
                return true;
            }
            p = unsettled;
            if (p != null && p.region().address() == region.address()) {
                return true;
            }
            for (int i = 0, n = Math.min(heldCount, MAX_HELD); i < n; i++) {
                PinnedRegion h = held[i]; // set before heldCount was raised
                if (h != null && h.region().address() == region.address()) {
                    return true;
                }
            }
            return false;
        }

        @Override
        public void run() {
            StagingPool.Staging st = null;
            try {
                st = staging.acquire();
                in = st.in;
                out = st.out;
                outAddress = st.outAddress;
                outCopies = st.outCopies;
                views = st.views;
                if (authenticated()) {
                    serve();
                }
            } catch (EOFException | ClosedChannelException e) {
                // the peer went away or we closed the connection
            } catch (IOException e) {
                if (!dead.get()) {
                    LOG.debug("TCP data connection ended: {}", e.toString());
                }
            } catch (RuntimeException | Error e) {
                LOG.warn("TCP data connection from {} failed unexpectedly", peer, e);
            } finally {
                close("done");
                releaseHeld();
                if (unsettled != null) {
                    pipe.settle(); // its copies end before its pin is let go
                    unsettled.unpin();
                    unsettled = null;
                }
                deviceStaging.release(pipe);
                if (st != null) {
                    staging.release(st);
                }
                connections.remove(this);
            }
        }

        /** Runs the authentication exchange when a secret is set; false (logged, counted) when the peer fails it. */
        private boolean authenticated() {
            if (!auth.isEnabled()) {
                return true;
            }
            try {
                auth.authenticateClient(ch.socket(), PeerAuthenticator.Purpose.DATA,
                        Duration.ofMillis(settings.connectTimeoutMillis));
                return true;
            } catch (MooncakeException e) {
                counters.unauthenticated.increment();
                if (!dead.get()) {
                    warnings.warn("unauthenticated", "TCP data server on port {}: refused the connection from {}: {}"
                            + " ({} refused so far)", port, peer, e.getMessage(), counters.unauthenticated.sum());
                }
                return false;
            }
        }

        private void serve() throws IOException {
            final ByteBuffer b = in.buf;
            while (true) {
                if (in.available() < TcpWire.HEADER_BYTES) {
                    if (unsettled != null && !headerReady()) {
                        settleWrite(); // the peer may wait for this status before it sends more
                    }
                    flushOut();
                    if (in.available() == 0) {
                        in.rpos = 0;
                        in.wpos = 0;
                    }
                    in.fill(ch, TcpWire.HEADER_BYTES, exactHeader ? TcpWire.HEADER_BYTES : in.capacity, this);
                }
                exactHeader = false;
                int h = in.rpos;
                long size = TcpWire.headerSize(b, h);
                long addr = TcpWire.headerAddress(b, h);
                int raw = TcpWire.headerOpcode(b, h);
                in.rpos = h + TcpWire.HEADER_BYTES;
                int op = TcpWire.baseOpcode(raw);
                boolean v2 = TcpWire.isV2(raw);
                if (op != TcpWire.OP_READ && op != TcpWire.OP_WRITE) {
                    counters.protocolErrors.increment();
                    warnings.warn("protocol",
                            "TCP data server on port {}: closed the connection from {}: unknown opcode {} in a"
                                    + " request header (is it a Mooncake TCP peer?)",
                            port, peer, raw);
                    return; // garbage: the stream cannot be trusted any more
                }
                PinnedRegion pin = size == 0 ? null : memory.pin(addr, size);
                progress();
                requestStart = lastProgress();
                current = pin;
                busy = true;
                try {
                    if (pin != null && pin.region().location().isCuda()) {
                        boolean keep = false;
                        try {
                            keep = serveDevice(op, v2, addr, size, pin);
                        } finally {
                            if (pin != unsettled) {
                                pin.unpin();
                            }
                        }
                        if (!keep) {
                            return;
                        }
                        continue;
                    }
                    if (unsettled != null) {
                        settleOverlapped(); // status frames go out in request order
                    }
                    if (pin == null) {
                        rejected(op, addr, size);
                    }
                    if (op == TcpWire.OP_WRITE) {
                        if (pin == null) {
                            if (!v2) {
                                return;
                            }
                            if (Long.compareUnsigned(size, DISCARD_MAX) > 0) {
                                queueStatus(TcpWire.STATUS_REJECTED);
                                flushOut();
                                return;
                            }
                            in.skipFully(ch, size, this);
                            queueStatus(TcpWire.STATUS_REJECTED);
                        } else {
                            try {
                                receive(addr, size);
                            } finally {
                                pin.unpin();
                            }
                            counters.served.increment();
                            counters.servedBytes.add(size);
                            if (v2) {
                                queueStatus(TcpWire.STATUS_OK);
                            }
                        }
                    } else if (pin == null) {
                        if (!v2) {
                            return;
                        }
                        queueStatus(TcpWire.STATUS_REJECTED);
                    } else {
                        boolean kept = false;
                        try {
                            if (v2) {
                                queueStatus(TcpWire.STATUS_OK);
                            }
                            kept = send(addr, size, pin);
                        } finally {
                            if (!kept) {
                                pin.unpin();
                            }
                        }
                        counters.served.increment();
                        counters.servedBytes.add(size);
                        if (iovCount + 3 > MAX_IOV
                                || heldCount == MAX_HELD
                                || pendingBytes >= FLUSH_BYTES) {
                            flushOut();
                        }
                    }
                } finally {
                    current = null;
                    idleSince = System.nanoTime();
                    busy = false;
                }
            }
        }

        /**
         * Serves a request on GPU memory (pinned by the caller), staged through the connection's
         * {@link DevicePipe}: a WRITE's payload is read and its copies enqueued, and its status frame
         * is queued only once its bytes are in device memory, which it leaves to {@link #settleWrite}
         * (keeping {@code pin} as {@link #unsettled}) so that the next request is read while the last
         * copies run; a READ's payload is copied out chunk by chunk as it is written. What cannot be
         * staged (no device provider here, a copy failed) is answered with status 1 and the stream
         * kept in step. Returns false when the connection must close (a v1 peer, a READ payload cut
         * short by a failed copy, a huge WRITE that cannot be staged).
         */
        private boolean serveDevice(int op, boolean v2, long addr, long size, PinnedRegion pin) throws IOException {
            boolean write = op == TcpWire.OP_WRITE;
            if (unsettled != null && !write) {
                settleOverlapped(); // the READ's status frame follows the WRITE's
            }
            if (!v2) {
                stagingFailed(write, addr, size, "the peer speaks tcp protocol v1, which has no status frames");
                return false;
            }
            DevicePipe p;
            try {
                if (pipe == null) {
                    pipe = deviceStaging.acquire();
                }
                p = pipe;
            } catch (MooncakeException e) {
                stagingFailed(write, addr, size, e.getMessage());
                if (write) {
                    if (Long.compareUnsigned(size, DISCARD_MAX) > 0) {
                        queueStatus(TcpWire.STATUS_REJECTED);
                        flushOut();
                        return false;
                    }
                    in.skipFully(ch, size, this);
                }
                queueStatus(TcpWire.STATUS_REJECTED);
                return true;
            }
            if (write) {
                p.receiveUnsettled(ch, in, this, addr, size, null, 0);
                PinnedRegion older = unsettled;
                long olderAddr = unsettledAddr;
                long olderSize = unsettledSize;
                unsettled = pin; // from here on the connection's end settles it and lets its pin go
                unsettledAddr = addr;
                unsettledSize = size;
                if (older != null) {
                    counters.gpuOverlappedWrites.increment();
                    settleWrite(older, olderAddr, olderSize); // the WRITE before it (its copies are done by now)
                }
                return true;
            } else {
                try {
                    p.beginSend(addr, size);
                } catch (MooncakeException e) {
                    stagingFailed(false, addr, size, e.getMessage());
                    queueStatus(TcpWire.STATUS_REJECTED);
                    return true;
                }
                queueStatus(TcpWire.STATUS_OK);
                flushOut();
                try {
                    p.finishSend(ch, this);
                } catch (MooncakeException e) {
                    stagingFailed(false, addr, size, e.getMessage() + "; the payload was cut short, so the connection"
                            + " is closed");
                    return false;
                }
            }
            counters.served.increment();
            counters.servedBytes.add(size);
            return true;
        }

        /** Waits for the copies of the {@link #unsettled} WRITE, queues its status frame and lets its pin go. */
        private void settleWrite() throws IOException {
            PinnedRegion pin = unsettled;
            unsettled = null;
            settleWrite(pin, unsettledAddr, unsettledSize);
        }

        /** {@link #settleWrite()} once the next request's header was read while its copies ran. */
        private void settleOverlapped() throws IOException {
            counters.gpuOverlappedWrites.increment();
            settleWrite();
        }

        /** Settles the oldest GPU WRITE whose copies may still run (at {@code addr}, under {@code pin}). */
        private void settleWrite(PinnedRegion pin, long addr, long size) throws IOException {
            String failure;
            try {
                failure = pipe.settle();
            } finally {
                pin.unpin();
            }
            if (failure != null) {
                stagingFailed(true, addr, size, failure);
                queueStatus(TcpWire.STATUS_REJECTED);
                return;
            }
            counters.served.increment();
            counters.servedBytes.add(size);
            queueStatus(TcpWire.STATUS_OK); // the bytes are in device memory
        }

        /** Whether a whole request header can be read without waiting for the peer. */
        private boolean headerReady() throws IOException {
            if (readable == null) {
                readable = ch.socket().getInputStream();
            }
            return in.available() + readable.available() >= TcpWire.HEADER_BYTES;
        }

        private void stagingFailed(boolean write, long addr, long size, String why) {
            counters.rejected.increment();
            warnings.warn("gpu",
                    "TCP data server on port {}: could not serve a {} of {} bytes of GPU memory at 0x{} from {}: {}",
                    port, write ? "WRITE" : "READ", Long.toUnsignedString(size), Long.toHexString(addr), peer, why);
        }

        private void rejected(int op, long addr, long size) {
            counters.rejected.increment();
            warnings.warn("rejected",
                    "TCP data server on port {}: rejected a {} of {} bytes at 0x{} from {}: the range is not"
                            + " inside one registered region",
                    port, op == TcpWire.OP_WRITE ? "WRITE" : "READ", Long.toUnsignedString(size),
                    Long.toHexString(addr), peer);
        }

        /** Reads {@code size} payload bytes into validated memory at {@code addr}. */
        private void receive(long addr, long size) throws IOException {
            // decided on the whole payload: the rest of a large one goes direct however little is left
            boolean direct = size >= DIRECT_MIN;
            while (size > 0) {
                long n;
                if (in.available() > 0) {
                    n = in.drainTo(addr, size);
                } else if (!direct) {
                    in.fill(ch, (int) size, this);
                    continue;
                } else {
                    if (receivedSinceReply >= REPLY_LAG_BYTES && (opos > 0 || iovCount > 0)) {
                        // a stream of large WRITEs rarely leaves the stage empty, which is when
                        // replies go out: do not let the initiator wait for them behind megabytes
                        flushOut();
                    }
                    // the rest of the payload straight into memory, and just the next header (whose
                    // payload is likely large too) into the stage
                    n = in.scatterRead(ch, views.view(addr, size, 0), TcpWire.HEADER_BYTES, this);
                    exactHeader = true;
                }
                addr += n;
                size -= n;
                receivedSinceReply += n;
            }
        }

        /**
         * Queues {@code size} bytes of validated memory at {@code addr} after the queued replies: small
         * payloads are copied, large ones are gathered from memory, keeping {@code pin} until they
         * are written (returns true then: the pin is no longer the caller's to release).
         */
        private boolean send(long addr, long size, PinnedRegion pin) throws IOException {
            if (size <= COPY_MAX) {
                ensureOut((int) size);
                NativeMemory.copy(outAddress + opos, addr, size);
                opos += (int) size;
                return false;
            }
            long pieces =
                    ((addr + size - 1) >>> WindowCache.WINDOW_SHIFT) - (addr >>> WindowCache.WINDOW_SHIFT) + 1;
            if (iovCount + 1 + pieces > MAX_IOV) {
                flushOut();
            }
            if (1 + pieces > MAX_IOV) {
                // tens of GiB: write it now, piece by piece, under the caller's pin
                while (size > 0) {
                    iov[0] = views.view(addr, size, 0);
                    int len = iov[0].remaining();
                    writeFully(iov, 1);
                    addr += len;
                    size -= len;
                }
                iov[0] = null;
                return false;
            }
            closeRun();
            held[heldCount++] = pin;
            pendingBytes += size;
            while (size > 0) {
                ByteBuffer v = views.view(addr, size, iovCount);
                int len = v.remaining();
                iov[iovCount++] = v;
                addr += len;
                size -= len;
            }
            return true;
        }

        private void queueStatus(int code) throws IOException {
            ensureOut(TcpWire.STATUS_BYTES);
            if (opos == 0 && iovCount == 0) {
                receivedSinceReply = 0; // the oldest unsent reply is this one
            }
            TcpWire.putStatus(out, opos, code);
            opos += TcpWire.STATUS_BYTES;
        }

        private void ensureOut(int n) throws IOException {
            if (opos + n > StagingPool.OUT_BYTES || iovCount + 1 >= MAX_IOV) {
                flushOut();
            }
        }

        /** Ends the current run of `out` bytes as one gathering-write entry. */
        private void closeRun() {
            if (opos > runStart) {
                ByteBuffer b = outCopies[iovCount];
                b.limit(opos).position(runStart);
                iov[iovCount++] = b;
                runStart = opos;
            }
        }

        /** Writes every queued reply, then releases the pins of the payloads it carried. */
        private void flushOut() throws IOException {
            closeRun();
            receivedSinceReply = 0;
            if (iovCount == 0) {
                opos = 0;
                runStart = 0;
                return;
            }
            boolean wasBusy = busy;
            busy = true; // a peer that does not read its replies is a stalled peer
            try {
                writeFully(iov, iovCount);
            } finally {
                busy = wasBusy;
                releaseHeld();
                for (int i = 0; i < iovCount; i++) {
                    iov[i] = null;
                }
                iovCount = 0;
                opos = 0;
                runStart = 0;
                pendingBytes = 0;
            }
        }

        private void releaseHeld() {
            for (int i = 0; i < heldCount; i++) {
                held[i].unpin();
                held[i] = null;
            }
            heldCount = 0;
        }

        private void writeFully(ByteBuffer[] bufs, int count) throws IOException {
            int off = 0;
            while (off < count) {
                long n = ch.write(bufs, off, count - off);
                if (n > 0) {
                    progress();
                }
                while (off < count && !bufs[off].hasRemaining()) {
                    off++;
                }
            }
        }
    }

    static void closeQuietly(java.nio.channels.Channel ch) {
        if (ch == null) {
            return;
        }
        try {
            ch.close();
        } catch (IOException | RuntimeException e) {
            // nothing useful to do
        }
    }

    static void join(Thread t) {
        if (t == null || t == Thread.currentThread()) {
            return;
        }
        try {
            t.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
