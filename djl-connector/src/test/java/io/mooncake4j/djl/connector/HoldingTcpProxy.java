package io.mooncake4j.djl.connector;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A TCP proxy for tests, on loopback in front of one peer's data port: it forwards every connection
 * both ways, and on command holds what initiators send, after letting a given number of bytes
 * through, so a transfer stalls in flight (partly delivered or not at all) as it would behind a
 * frozen peer. Replies always flow, and when the peer closes a connection the proxy closes the
 * initiator's side, as a dead peer's kernel would.
 */
final class HoldingTcpProxy implements AutoCloseable {
    private static final AtomicInteger THREADS = new AtomicInteger();
    /** How long a held pump sleeps before looking again whether it may go on. */
    private static final long HOLD_POLL_MILLIS = 50;

    private final ServerSocket server;
    private final Thread acceptor;
    private final Set<Socket> sockets = ConcurrentHashMap.newKeySet();
    private final AtomicLong forwarded = new AtomicLong();
    private final AtomicInteger connections = new AtomicInteger();
    private final Object lock = new Object();
    /** Bytes toward the peer still let through; Long.MAX_VALUE when not holding. Guarded by lock. */
    private long allowance = Long.MAX_VALUE;
    private volatile InetSocketAddress target;
    private volatile boolean closed;

    HoldingTcpProxy() {
        try {
            server = new ServerSocket(0, 64, InetAddress.getLoopbackAddress());
        } catch (IOException e) {
            throw new IllegalStateException("test proxy cannot listen on loopback: " + e, e);
        }
        acceptor = new Thread(this::accept, "test-proxy-accept-" + server.getLocalPort());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** The port initiators connect to. */
    int port() {
        return server.getLocalPort();
    }

    /** Sets the peer's data server; connections accepted before it is known are refused. */
    void forwardTo(InetSocketAddress peer) {
        target = peer;
    }

    /** Lets {@code passBytes} more bytes toward the peer through, then holds the rest until {@link #resume()}. */
    void holdAfter(long passBytes) {
        synchronized (lock) {
            allowance = passBytes;
        }
    }

    /** Forwards everything again, held bytes first. */
    void resume() {
        synchronized (lock) {
            allowance = Long.MAX_VALUE;
            lock.notifyAll();
        }
    }

    /** Bytes forwarded toward the peer so far. */
    long forwardedBytes() {
        return forwarded.get();
    }

    /** Connections accepted so far. */
    int connections() {
        return connections.get();
    }

    private void accept() {
        while (!closed) {
            Socket in;
            try {
                in = server.accept();
            } catch (IOException e) {
                return; // closed
            }
            connections.incrementAndGet();
            sockets.add(in);
            InetSocketAddress to = target;
            Socket out = new Socket();
            sockets.add(out);
            try {
                if (to == null) {
                    throw new IOException("no peer to forward to yet");
                }
                in.setTcpNoDelay(true);
                out.setTcpNoDelay(true);
                out.connect(to, 5000);
            } catch (IOException e) {
                closePair(in, out);
                continue;
            }
            start(() -> pump(in, out, true), "up");
            start(() -> pump(out, in, false), "down");
        }
    }

    private void start(Runnable r, String direction) {
        Thread t = new Thread(r, "test-proxy-" + direction + "-" + THREADS.incrementAndGet());
        t.setDaemon(true);
        t.start();
    }

    /** Copies {@code from} to {@code to} until either ends; {@code held}: this direction obeys holds. */
    private void pump(Socket from, Socket to, boolean held) {
        byte[] buf = new byte[64 * 1024];
        try {
            InputStream in = from.getInputStream();
            OutputStream out = to.getOutputStream();
            for (int n; (n = in.read(buf)) > 0; ) {
                for (int off = 0; off < n; ) {
                    int k = held ? take(n - off, from) : n - off;
                    out.write(buf, off, k);
                    off += k;
                    if (held) {
                        forwarded.addAndGet(k);
                    }
                }
            }
        } catch (IOException e) {
            // a side ended: end the other
        } finally {
            closePair(from, to);
        }
    }

    /** Waits until some of {@code want} bytes may pass and takes them from the allowance. */
    private int take(int want, Socket from) throws IOException {
        synchronized (lock) {
            while (allowance == 0) {
                if (closed || from.isClosed()) {
                    throw new IOException("proxy closed");
                }
                try {
                    lock.wait(HOLD_POLL_MILLIS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted");
                }
            }
            int k = (int) Math.min(want, allowance);
            if (allowance != Long.MAX_VALUE) {
                allowance -= k;
            }
            return k;
        }
    }

    private void closePair(Socket a, Socket b) {
        for (Socket s : new Socket[] {a, b}) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing
            }
            sockets.remove(s);
        }
    }

    /** Closes the listener and every connection. Idempotent. */
    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException ignored) {
            // closing
        }
        for (Socket s : sockets) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing
            }
        }
        sockets.clear();
        synchronized (lock) {
            lock.notifyAll();
        }
    }

    @Override
    public String toString() {
        return "HoldingTcpProxy[:" + port() + " -> " + target + ", forwarded " + forwarded.get() + "]";
    }
}
