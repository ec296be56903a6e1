package io.mooncake4j.transport.tcp;

import static io.mooncake4j.transport.tcp.TcpTestKit.config;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Opcode;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeContext;
import io.mooncake4j.transport.tcp.TcpTestKit.FakeSubmission;
import io.mooncake4j.transport.tcp.TcpTestKit.Mapped;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Loopback figures in the shape of transfer_engine_bench (threads x batches of blocks). Never runs by
 * default; run with {@code mvn -pl plugin-tcp test -Dtest=TcpThroughputBenchmark
 * -Dsurefire.excludedGroups=none}. Settings through system properties: {@code bench.seconds},
 * {@code bench.threads}.
 */
@Tag("benchmark")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class TcpThroughputBenchmark {
    private static final double SECONDS = Double.parseDouble(System.getProperty("bench.seconds", "3"));
    private static final int THREADS = Integer.getInteger("bench.threads", 2);

    /** Runs outside JUnit (e.g. on a quiet machine with just a JRE and the class path). */
    public static void main(String[] args) throws Exception {
        new TcpThroughputBenchmark().loopbackFigures();
    }

    @Test
    void loopbackFigures() throws Exception {
        double raw = rawSingleStream();
        System.out.printf("raw single-stream loopback (1 MiB writes): %.2f GB/s%n", raw);
        FakeContext ca = new FakeContext(config());
        FakeContext cb = new FakeContext(config());
        long bufferSize = 512L << 20;
        try (TcpTransport a = new TcpTransport(ca);
                TcpTransport b = new TcpTransport(cb);
                Mapped ma = new Mapped(bufferSize);
                Mapped mb = new Mapped(bufferSize)) {
            ca.memory.register(ma.address, ma.length, MemoryLocation.CPU);
            cb.memory.register(mb.address, mb.length, MemoryLocation.CPU);
            SegmentDescriptor peer = TcpTestKit.describe(b);
            a.warmup(peer);
            for (Opcode op : new Opcode[] {Opcode.WRITE, Opcode.READ}) {
                run(a, peer, ma, mb, op, 4096, 128, true);
                run(a, peer, ma, mb, op, 64 << 10, 128, false);
                run(a, peer, ma, mb, op, 1 << 20, 32, false);
            }
            System.out.println("counters A " + a.counters());
            System.out.println("counters B " + b.counters());
        }
    }

    private static void run(
            TcpTransport a,
            SegmentDescriptor peer,
            Mapped ma,
            Mapped mb,
            Opcode op,
            int block,
            int batch,
            boolean measureAllocation)
            throws Exception {
        long perThread = (long) block * batch;
        assertTrue(perThread * THREADS <= ma.length);
        FakeSubmission[] subs = new FakeSubmission[THREADS];
        for (int t = 0; t < THREADS; t++) {
            FakeSubmission s = new FakeSubmission(batch);
            for (int i = 0; i < batch; i++) {
                long off = t * perThread + (long) i * block;
                s.set(i, op, ma.address + off, mb.address + off, block);
            }
            subs[t] = s;
        }
        // warm up (JIT), then measure
        loop(a, peer, subs, 0.5);
        com.sun.management.ThreadMXBean mx =
                (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long alloc0 = allocated(mx);
        long t0 = System.nanoTime();
        long requests = loop(a, peer, subs, SECONDS);
        long t1 = System.nanoTime();
        long alloc1 = allocated(mx);
        double secs = (t1 - t0) / 1e9;
        double gbps = requests * (double) block / secs / 1e9;
        String allocation =
                measureAllocation
                        ? String.format(", %.1f B heap/request (whole JVM, incl. test harness)",
                                (alloc1 - alloc0) / (double) requests)
                        : "";
        System.out.printf(
                "%-5s block %7d batch %3d threads %d: %,10.0f req/s  %6.2f GB/s%s%n",
                op, block, batch, THREADS, requests / secs, gbps, allocation);
    }

    private static long allocated(com.sun.management.ThreadMXBean mx) {
        long[] ids = mx.getAllThreadIds();
        return Arrays.stream(mx.getThreadAllocatedBytes(ids)).filter(v -> v > 0).sum();
    }

    private static long loop(TcpTransport a, SegmentDescriptor peer, FakeSubmission[] subs, double seconds)
            throws Exception {
        AtomicLong total = new AtomicLong();
        long end = System.nanoTime() + (long) (seconds * 1e9);
        Thread[] threads = new Thread[subs.length];
        Throwable[] error = new Throwable[1];
        for (int t = 0; t < subs.length; t++) {
            FakeSubmission s = subs[t];
            threads[t] =
                    new Thread(
                            () -> {
                                try {
                                    long n = 0;
                                    while (System.nanoTime() < end) {
                                        s.reset();
                                        a.submit(peer, s);
                                        assertTrue(s.await(30_000));
                                        assertEquals("", s.failures());
                                        n += s.size();
                                    }
                                    total.addAndGet(n);
                                } catch (Throwable e) {
                                    error[0] = e;
                                }
                            });
            threads[t].start();
        }
        for (Thread t : threads) {
            t.join();
        }
        if (error[0] != null) {
            throw new AssertionError(error[0]);
        }
        return total.get();
    }

    /** One stream, 1 MiB writes from a direct buffer into a reader thread: the iperf3-like baseline. */
    private static double rawSingleStream() throws Exception {
        try (ServerSocketChannel server =
                ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            int port = ((InetSocketAddress) server.getLocalAddress()).getPort();
            AtomicLong received = new AtomicLong();
            Thread reader =
                    new Thread(
                            () -> {
                                try (SocketChannel ch = server.accept()) {
                                    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
                                    int n;
                                    while ((n = ch.read(buf)) >= 0) {
                                        received.addAndGet(n);
                                        buf.clear();
                                    }
                                } catch (Exception e) {
                                    // done
                                }
                            });
            reader.start();
            ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
            NativeMemory.fill(NativeMemory.address(buf), 1 << 20, 7);
            long t0;
            long sent = 0;
            try (SocketChannel ch = SocketChannel.open(new InetSocketAddress("127.0.0.1", port))) {
                t0 = System.nanoTime();
                long end = t0 + (long) (SECONDS * 1e9);
                while (System.nanoTime() < end) {
                    buf.clear();
                    while (buf.hasRemaining()) {
                        sent += ch.write(buf);
                    }
                }
            }
            reader.join();
            return received.get() / ((System.nanoTime() - t0) / 1e9) / 1e9;
        }
    }
}
