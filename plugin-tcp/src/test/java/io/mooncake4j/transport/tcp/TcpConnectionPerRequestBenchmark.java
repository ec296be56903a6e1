package io.mooncake4j.transport.tcp;

import static io.mooncake4j.transport.tcp.TcpTestKit.config;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeContext;
import io.mooncake4j.transport.tcp.TcpTestKit.Mapped;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Mooncake's default initiator (no connection pool) against our target: per request it connects,
 * sends one v2 WRITE header and the payload, reads the 8-byte status and closes. Prints the median
 * and percentiles of the time per request (connect included), for our target and for the floor (a
 * minimal server that does nothing else), and their ratio. Never runs by default; run with {@code
 * mvn -pl plugin-tcp test -Dtest=TcpConnectionPerRequestBenchmark -Dsurefire.excludedGroups=none}
 * or its {@link #main}. Settings through system properties: {@code bench.requests} (default 5000),
 * {@code bench.block} (default 65536), {@code bench.settings} (the target's settings, e.g. {@code
 * MC_TCP_SOCKET_BUFFER=0,MC_TCP_MAX_SERVED_CONNECTIONS=64}).
 */
@Tag("benchmark")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class TcpConnectionPerRequestBenchmark {
    private static final int REQUESTS = Integer.getInteger("bench.requests", 5000);
    private static final int BLOCK = Integer.getInteger("bench.block", 64 << 10);
    private static final String SETTINGS = System.getProperty("bench.settings", "");

    /** Runs outside JUnit (e.g. under strace, or on a quiet machine). */
    public static void main(String[] args) throws Exception {
        new TcpConnectionPerRequestBenchmark().connectionPerRequestFigures();
    }

    @Test
    void connectionPerRequestFigures() throws Exception {
        FakeContext ctx = new FakeContext(config(SETTINGS.isEmpty() ? new String[0] : SETTINGS.split("[,=]")));
        try (TcpTransport target = new TcpTransport(ctx);
                Mapped mem = new Mapped(BLOCK)) {
            ctx.memory.register(mem.address, mem.length, MemoryLocation.CPU);
            InetSocketAddress at = new InetSocketAddress("127.0.0.1", target.dataPort());
            ByteBuffer request = ByteBuffer.allocateDirect(TcpWire.HEADER_BYTES + BLOCK).order(ByteOrder.LITTLE_ENDIAN);
            TcpWire.putHeader(request, 0, BLOCK, mem.address, TcpWire.OP_WRITE, true);
            ByteBuffer status = ByteBuffer.allocateDirect(TcpWire.STATUS_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            try (FloorServer floor = new FloorServer()) {
                InetSocketAddress floorAt = new InetSocketAddress("127.0.0.1", floor.port());
                long rss0 = residentBytes();
                run(at, request, status, REQUESTS / 5); // warm up (JIT, thread and buffer pools)
                run(floorAt, request, status, REQUESTS / 5);
                long[] ours = run(at, request, status, REQUESTS);
                System.out.printf("resident set: %d MB before, %d MB after %d connections to TcpServer%n",
                        rss0 >> 20, residentBytes() >> 20, REQUESTS + REQUESTS / 5);
                long[] bare = run(floorAt, request, status, REQUESTS);
                print("TcpServer", ours);
                print("floor (one thread: accept, read, reply, wait for close)", bare);
                System.out.printf("median ratio TcpServer/floor: %.2f%n", median(ours) / median(bare));
            }
            System.out.println("counters " + target.counters());
        }
    }

    /** VmRSS of this process, from /proc/self/status. */
    private static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
            }
        }
        return -1;
    }

    private static double median(long[] sorted) {
        return sorted[sorted.length / 2];
    }

    private static void print(String what, long[] nanos) {
        Arrays.sort(nanos);
        System.out.printf(
                "connection per request, %d-byte WRITE, %s: median %.1f us, p90 %.1f us, p99 %.1f us (%d requests)%n",
                BLOCK,
                what,
                nanos[nanos.length / 2] / 1e3,
                nanos[nanos.length * 9 / 10] / 1e3,
                nanos[nanos.length * 99 / 100] / 1e3,
                nanos.length);
    }

    /**
     * The least a target can do per request: one thread that accepts, reads the header and the
     * payload into a reused buffer, replies and waits for the client to close. What a connection-per-request client gets
     * from any target is bounded by this.
     */
    private static final class FloorServer implements AutoCloseable {
        private final ServerSocketChannel server;
        private final Thread thread;

        FloorServer() throws IOException {
            server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
            thread = new Thread(this::serve, "floor-server");
            thread.setDaemon(true);
            thread.start();
        }

        int port() throws IOException {
            return ((InetSocketAddress) server.getLocalAddress()).getPort();
        }

        private void serve() {
            ByteBuffer in = ByteBuffer.allocateDirect(TcpWire.HEADER_BYTES + BLOCK).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer reply = ByteBuffer.allocateDirect(TcpWire.STATUS_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            while (true) {
                try (SocketChannel ch = server.accept()) {
                    ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
                    in.clear();
                    while (in.hasRemaining() && ch.read(in) >= 0) {
                        // until the whole request is in
                    }
                    reply.clear();
                    reply.putLong(0, TcpWire.statusFrame(TcpWire.STATUS_OK));
                    ch.write(reply);
                    // like any target of persistent connections, wait for the next request: the
                    // client closes first (so its side holds TIME_WAIT, which slows its connects)
                    in.clear();
                    while (ch.read(in) >= 0) {
                        in.clear();
                    }
                } catch (IOException e) {
                    return; // closed
                }
            }
        }

        @Override
        public void close() throws IOException {
            server.close();
        }
    }

    private static long[] run(InetSocketAddress at, ByteBuffer request, ByteBuffer status, int n) throws Exception {
        long[] nanos = new long[n];
        for (int i = 0; i < n; i++) {
            long t0 = System.nanoTime();
            try (SocketChannel ch = SocketChannel.open()) {
                ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
                ch.connect(at);
                request.clear();
                while (request.hasRemaining()) {
                    ch.write(request);
                }
                status.clear();
                while (status.hasRemaining()) {
                    if (ch.read(status) < 0) {
                        throw new IllegalStateException("target closed the connection before the status");
                    }
                }
                long frame = status.getLong(0);
                if (!TcpWire.isStatusFrame(frame) || TcpWire.statusCode(frame) != TcpWire.STATUS_OK) {
                    throw new IllegalStateException("request " + i + " failed: status frame " + Long.toHexString(frame));
                }
            }
            nanos[i] = System.nanoTime() - t0;
        }
        return nanos;
    }
}
