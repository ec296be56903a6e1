package io.mooncake4j.transport.tcp;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.LocalMemory;
import io.mooncake4j.spi.PinnedRegion;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Submission;
import io.mooncake4j.spi.TransportContext;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicReferenceArray;

/** Small fakes of what the engine gives a transport, until the engine's own tests take over. */
final class TcpTestKit {
    private TcpTestKit() {}

    /** Engine settings with no environment, plus {@code keyValues}. */
    static EngineConfig config(String... keyValues) {
        EngineConfig.Builder b = EngineConfig.builder().environment(Map.of());
        for (int i = 0; i < keyValues.length; i += 2) {
            b.set(keyValues[i], keyValues[i + 1]);
        }
        return b.build();
    }

    /** A transport context over a {@link FakeMemory}. */
    static final class FakeContext implements TransportContext {
        final EngineConfig config;
        final FakeMemory memory = new FakeMemory();

        FakeContext(EngineConfig config) {
            this.config = config;
        }

        @Override
        public EngineConfig config() {
            return config;
        }

        @Override
        public String localHostname() {
            return "127.0.0.1";
        }

        @Override
        public String localSegmentName() {
            return "127.0.0.1:15000";
        }

        @Override
        public LocalMemory localMemory() {
            return memory;
        }

        /** Every peer of these tests listens on loopback. */
        @Override
        public InetAddress peerHost(String segmentName) {
            return InetAddress.getLoopbackAddress();
        }

        @Override
        public JsonObject connect(String segmentName, JsonObject request, Duration timeout) {
            throw new UnsupportedOperationException("no handshake in these tests");
        }
    }

    /** Registered regions; counts pins so tests can check every pin was released. */
    static final class FakeMemory implements LocalMemory {
        final List<Pinned> regions = new CopyOnWriteArrayList<>();
        final AtomicInteger outstanding = new AtomicInteger();
        final AtomicInteger pins = new AtomicInteger();

        MemoryRegion register(long address, long length, MemoryLocation location) {
            MemoryRegion r = new MemoryRegion(address, length, location);
            regions.add(new Pinned(r));
            return r;
        }

        @Override
        public PinnedRegion pin(long address, long length) {
            for (Pinned p : regions) {
                if (p.region.contains(address, length)) {
                    outstanding.incrementAndGet();
                    pins.incrementAndGet();
                    return p;
                }
            }
            return null;
        }

        final class Pinned implements PinnedRegion {
            final MemoryRegion region;

            Pinned(MemoryRegion region) {
                this.region = region;
            }

            @Override
            public MemoryRegion region() {
                return region;
            }

            @Override
            public void unpin() {
                outstanding.decrementAndGet();
            }
        }
    }

    /**
     * A batch of requests; records how each ended and checks part accounting as the engine does:
     * reports after a request ended change nothing but still count ({@link #partsOutstanding}).
     */
    static final class FakeSubmission implements Submission {
        final Opcode[] ops;
        final long[] local;
        final long[] remote;
        final long[] length;
        final boolean[] cuda;
        final boolean[] remoteCuda;
        final long deadline;
        final AtomicIntegerArray partsLeft;
        final AtomicReferenceArray<TransferStatus> status;
        final AtomicReferenceArray<String> reasons;
        final AtomicReferenceArray<TransferStatus> firstFailure;
        final AtomicReferenceArray<String> firstReason;
        final AtomicInteger overCompleted = new AtomicInteger();
        volatile boolean aborted;
        CountDownLatch done;

        FakeSubmission(int n) {
            ops = new Opcode[n];
            local = new long[n];
            remote = new long[n];
            length = new long[n];
            cuda = new boolean[n];
            remoteCuda = new boolean[n];
            deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            partsLeft = new AtomicIntegerArray(n);
            for (int i = 0; i < n; i++) {
                partsLeft.set(i, 1);
            }
            status = new AtomicReferenceArray<>(n);
            reasons = new AtomicReferenceArray<>(n);
            firstFailure = new AtomicReferenceArray<>(n);
            firstReason = new AtomicReferenceArray<>(n);
            done = new CountDownLatch(n);
        }

        static FakeSubmission of(Opcode op, long local, long remote, long length) {
            FakeSubmission s = new FakeSubmission(1);
            s.set(0, op, local, remote, length);
            return s;
        }

        FakeSubmission set(int i, Opcode op, long l, long r, long len) {
            ops[i] = op;
            local[i] = l;
            remote[i] = r;
            length[i] = len;
            return this;
        }

        @Override
        public int size() {
            return ops.length;
        }

        @Override
        public Opcode opcode(int i) {
            return ops[i];
        }

        @Override
        public long localAddress(int i) {
            return local[i];
        }

        @Override
        public long remoteAddress(int i) {
            return remote[i];
        }

        @Override
        public long length(int i) {
            return length[i];
        }

        @Override
        public boolean localIsCuda(int i) {
            return cuda[i];
        }

        @Override
        public RegionRegistration localRegistration(int i) {
            return RegionRegistration.NONE;
        }

        @Override
        public BufferDescriptor remoteBuffer(int i) {
            return new BufferDescriptor(remoteCuda[i] ? "cuda:0" : "cpu:0", remote[i], length[i]);
        }

        @Override
        public long deadlineNanos() {
            return deadline;
        }

        @Override
        public boolean isAborted() {
            return aborted;
        }

        /** Ends every pending request as the engine does at a deadline (parts stay to be reported). */
        void endAll(TransferStatus st, String reason) {
            aborted = true;
            for (int i = 0; i < size(); i++) {
                end(i, st, reason);
            }
        }

        /** Parts issued but not reported yet, over every request (the engine keeps their memory pinned). */
        int partsOutstanding() {
            int n = 0;
            for (int i = 0; i < size(); i++) {
                n += Math.max(0, partsLeft.get(i));
            }
            return n;
        }

        @Override
        public void expectParts(int i, int parts) {
            partsLeft.set(i, parts);
        }

        @Override
        public void partDone(int i, TransferStatus st) {
            partFailed(i, st, st == TransferStatus.COMPLETED ? null : "part ended " + st);
        }

        @Override
        public void partFailed(int i, TransferStatus st, String reason) {
            if (isDone(i)) {
                if (partsLeft.decrementAndGet(i) < 0) {
                    overCompleted.incrementAndGet();
                }
                return;
            }
            if (st != TransferStatus.COMPLETED) {
                firstFailure.compareAndSet(i, null, st);
                firstReason.compareAndSet(i, null, reason);
            }
            int left = partsLeft.decrementAndGet(i);
            if (left < 0) {
                overCompleted.incrementAndGet();
            } else if (left == 0) {
                TransferStatus f = firstFailure.get(i);
                end(i, f == null ? TransferStatus.COMPLETED : f, firstReason.get(i));
            }
        }

        @Override
        public void fail(int i, TransferStatus st, String reason) {
            partsLeft.set(i, 0);
            end(i, st, reason);
        }

        @Override
        public boolean isDone(int i) {
            return status.get(i) != null;
        }

        private void end(int i, TransferStatus st, String reason) {
            if (status.compareAndSet(i, null, st)) {
                reasons.set(i, reason);
                done.countDown();
            }
        }

        /** Makes the batch pending again, to be submitted once more (benchmarks reuse batches). */
        void reset() {
            for (int i = 0; i < size(); i++) {
                partsLeft.set(i, 1);
                status.set(i, null);
                reasons.set(i, null);
                firstFailure.set(i, null);
                firstReason.set(i, null);
            }
            done = new CountDownLatch(size());
        }

        boolean await(long millis) throws InterruptedException {
            return done.await(millis, TimeUnit.MILLISECONDS);
        }

        TransferStatus status(int i) {
            return status.get(i);
        }

        String reason(int i) {
            return reasons.get(i);
        }

        /** Every request COMPLETED, else a message listing the first failures. */
        String failures() {
            StringBuilder sb = new StringBuilder();
            int shown = 0;
            for (int i = 0; i < size(); i++) {
                if (status.get(i) != TransferStatus.COMPLETED && shown++ < 5) {
                    sb.append("request ")
                            .append(i)
                            .append(" (")
                            .append(ops[i])
                            .append(' ')
                            .append(length[i])
                            .append(" bytes): ")
                            .append(status.get(i))
                            .append(' ')
                            .append(reasons.get(i))
                            .append('\n');
                }
            }
            if (overCompleted.get() > 0) {
                sb.append(overCompleted.get()).append(" parts completed more than once\n");
            }
            return sb.toString();
        }
    }

    /** Memory from {@link NativeMemory#map}, unmapped by {@link #close()}. */
    static final class Mapped implements AutoCloseable {
        final long address;
        final long length;

        Mapped(long length) {
            this.length = length;
            this.address = NativeMemory.map(length);
        }

        @Override
        public void close() {
            NativeMemory.unmap(address, length);
        }
    }

    /** Fills {@code [address, address + length)} with pseudo-random bytes. */
    static void fillRandom(long address, long length, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        long done = 0;
        while (done < length) {
            int chunk = (int) Math.min(length - done, 1 << 30);
            ByteBuffer b = NativeMemory.wrap(address + done, chunk);
            while (b.remaining() >= 8) {
                b.putLong(rnd.nextLong());
            }
            while (b.hasRemaining()) {
                b.put((byte) rnd.nextInt());
            }
            done += chunk;
        }
    }

    /** Fills with one byte value. */
    static void fill(long address, long length, int value) {
        NativeMemory.fill(address, length, value);
    }

    /** Index of the first differing byte, or -1. */
    static long mismatch(long a, long b, long length) {
        long done = 0;
        while (done < length) {
            int chunk = (int) Math.min(length - done, 1 << 30);
            int m = NativeMemory.wrap(a + done, chunk).mismatch(NativeMemory.wrap(b + done, chunk));
            if (m >= 0) {
                return done + m;
            }
            done += chunk;
        }
        return -1;
    }

    /** Whether every byte equals {@code value}. */
    static boolean allEqual(long address, long length, int value) {
        ByteBuffer b = NativeMemory.wrap(address, (int) length);
        long pattern = (value & 0xFFL) * 0x0101010101010101L;
        int i = 0;
        for (; i + 8 <= length; i += 8) {
            if (b.getLong(i) != pattern) {
                return false;
            }
        }
        for (; i < length; i++) {
            if (b.get(i) != (byte) value) {
                return false;
            }
        }
        return true;
    }

    /** A peer descriptor pointing at {@code port} on loopback. */
    static SegmentDescriptor peer(int port, Integer protoVersion) {
        JsonObject j = new JsonObject();
        j.addProperty("name", "127.0.0.1:15999");
        j.addProperty("protocol", "tcp");
        j.addProperty("tcp_data_port", port);
        if (protoVersion != null) {
            j.addProperty("tcp_proto_version", protoVersion);
        }
        return SegmentDescriptor.fromJson(j);
    }

    /** The descriptor a transport publishes. */
    static SegmentDescriptor describe(TcpTransport t) {
        JsonObject j = new JsonObject();
        j.addProperty("name", "127.0.0.1:15998");
        j.addProperty("protocol", t.protocol());
        t.describe(j);
        return SegmentDescriptor.fromJson(j);
    }

    static List<Long> sizes(long... s) {
        List<Long> l = new ArrayList<>();
        for (long v : s) {
            l.add(v);
        }
        return l;
    }
}
