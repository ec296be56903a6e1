package io.mooncake4j.transport.tcp;

import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.LocalMemory;
import io.mooncake4j.spi.PinnedRegion;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The target side: serves peers' READ and WRITE requests on the data port, one thread per connection
 * (a peer keeps a few persistent connections, so threads stay few).
 *
 * <p>Each request is checked with {@link LocalMemory#pin} before any byte of memory is touched; the
 * pin is held for the I/O only. Bytes move between the socket and registered memory through direct
 * views; small frames and payloads go through a per-connection staging buffer so that one system
 * call carries many of them. Replies are answered in order and flushed before the next blocking read.
 */
final class TcpServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(TcpServer.class);

    /** A rejected WRITE payload up to this size is read and dropped to keep the stream in sync. */
    static final long DISCARD_MAX = 64L << 20;
    private static final int IN_BYTES = 256 << 10;
    private static final int OUT_BYTES = 256 << 10;
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
    private final TcpSettings settings;
    private final TcpCounters counters;
    private final ServerSocketChannel server;
    private final Thread acceptor;
    private final Set<Served> connections = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final int port;

    TcpServer(LocalMemory memory, TcpSettings settings, TcpCounters counters) throws IOException {
        this.memory = memory;
        this.settings = settings;
        this.counters = counters;
        ServerSocketChannel ch = ServerSocketChannel.open();
        try {
            ch.setOption(StandardSocketOptions.SO_REUSEADDR, true);
            if (settings.socketBuffer > 0) {
                // set before bind so that the window scale of accepted connections allows it
                ch.setOption(StandardSocketOptions.SO_RCVBUF, settings.socketBuffer);
            }
            ch.bind(new InetSocketAddress(settings.dataPort), 1024);
            this.port = ((InetSocketAddress) ch.getLocalAddress()).getPort();
        } catch (IOException | RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
        this.server = ch;
        this.acceptor = new Thread(this::acceptLoop, "mc-tcp-accept-" + port);
        acceptor.setDaemon(true);
        acceptor.start();
    }

    int port() {
        return port;
    }

    /** Connections being served, for the watchdog. */
    Set<? extends Watched> connections() {
        return connections;
    }

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
            }
            if (connections.size() >= settings.maxServedConnections) {
                counters.refusedConnections.increment();
                closeQuietly(ch);
                continue;
            }
            try {
                ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
                ch.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
                if (settings.socketBuffer > 0) {
                    ch.setOption(StandardSocketOptions.SO_SNDBUF, settings.socketBuffer);
                }
                Served s = new Served(ch);
                connections.add(s);
                if (closed.get()) {
                    s.kill("server closed");
                    connections.remove(s);
                    continue;
                }
                counters.servedConnections.increment();
                Thread t = new Thread(s, "mc-tcp-serve-" + port + "-" + ch.getRemoteAddress());
                t.setDaemon(true);
                s.thread = t;
                t.start();
            } catch (IOException | RuntimeException | OutOfMemoryError e) {
                LOG.warn("TCP data server on port {}: cannot serve a connection: {}", port, e.toString());
                closeQuietly(ch);
            }
        }
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        closeQuietly(server);
        join(acceptor);
        for (Served s : connections) {
            s.kill("server closed");
        }
        for (Served s : connections) {
            join(s.thread);
        }
        connections.clear();
    }

    /** One peer connection and its thread. */
    private final class Served extends Watched implements Runnable {
        private final SocketChannel ch;
        private final AtomicBoolean dead = new AtomicBoolean();
        private final InputStage in = new InputStage(IN_BYTES);
        private final ByteBuffer out = ByteBuffer.allocateDirect(OUT_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        private final long outAddress = NativeMemory.address(out);
        // replies are gathered: runs of `out` (status frames, small payloads) between views of
        // memory (large READ payloads, whose pins are held until the write is done)
        private final ByteBuffer[] outCopies = new ByteBuffer[MAX_IOV];
        private final ByteBuffer[] iov = new ByteBuffer[MAX_IOV];
        private final PinnedRegion[] held = new PinnedRegion[MAX_HELD];
        private final WindowCache views = new WindowCache();
        private volatile boolean busy;
        private int opos;
        private int runStart;
        private int iovCount;
        private int heldCount;
        private long pendingBytes;
        // the last WRITE payload was large: read only the next header, so that a large payload
        // after it goes straight to memory instead of through the stage (one copy less)
        private boolean exactHeader;
        private long receivedSinceReply; // payload bytes received since the oldest unsent reply
        volatile Thread thread;

        Served(SocketChannel ch) {
            this.ch = ch;
            for (int i = 0; i < MAX_IOV; i++) {
                outCopies[i] = out.duplicate();
            }
        }

        @Override
        boolean busy() {
            return busy;
        }

        @Override
        void kill(String reason) {
            if (dead.compareAndSet(false, true)) {
                closeQuietly(ch);
            }
        }

        @Override
        public void run() {
            try {
                serve();
            } catch (EOFException | ClosedChannelException e) {
                // the peer went away or we closed the connection
            } catch (IOException e) {
                if (!dead.get()) {
                    LOG.debug("TCP data connection ended: {}", e.toString());
                }
            } catch (RuntimeException | Error e) {
                LOG.warn("TCP data connection failed unexpectedly", e);
            } finally {
                kill("done");
                releaseHeld();
                connections.remove(this);
            }
        }

        private void serve() throws IOException {
            final ByteBuffer b = in.buf;
            while (true) {
                if (in.available() < TcpWire.HEADER_BYTES) {
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
                    return; // garbage: the stream cannot be trusted any more
                }
                PinnedRegion pin = size == 0 ? null : memory.pin(addr, size);
                if (pin != null && pin.region().location().isCuda()) {
                    pin.unpin(); // host memory only; GPU memory comes with the EFA transport
                    pin = null;
                }
                busy = true;
                progress();
                try {
                    if (op == TcpWire.OP_WRITE) {
                        if (pin == null) {
                            counters.rejected.increment();
                            if (!v2) {
                                return;
                            }
                            if (Long.compareUnsigned(size, DISCARD_MAX) > 0) {
                                queueStatus(TcpWire.STATUS_REJECTED);
                                flushOut();
                                return;
                            }
                            discard(size);
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
                        counters.rejected.increment();
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
                    busy = false;
                }
            }
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

        /** Reads and drops {@code size} bytes. */
        private void discard(long size) throws IOException {
            size -= in.skip(size);
            while (size > 0) {
                in.fill(ch, 1, this);
                size -= in.skip(size);
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
            if (opos + n > OUT_BYTES || iovCount + 1 >= MAX_IOV) {
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
