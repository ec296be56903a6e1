package io.mooncake4j.transport.efa;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.LocalMemory;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Submission;
import io.mooncake4j.spi.TransportContext;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

/**
 * Two efa transports without engines, for what the engine API cannot show: which NIC carried the
 * traffic, and registration on several NICs. Their contexts hand Connection handshakes straight to
 * each other.
 */
final class EfaPair implements AutoCloseable {
    private static final Map<String, EfaTransport> BY_NAME = new ConcurrentHashMap<>();
    /** Segments that are not transports of a pair (a bare NIC), answering Connection handshakes. */
    static final Map<String, UnaryOperator<JsonObject>> OTHERS = new ConcurrentHashMap<>();
    final EfaTransport a;
    final EfaTransport b;

    EfaPair(String... settings) {
        a = create("127.0.0.1:1", settings);
        try {
            b = create("127.0.0.1:2", settings);
        } catch (RuntimeException e) {
            a.close();
            throw e;
        }
    }

    private static EfaTransport create(String name, String... settings) {
        EngineConfig.Builder c = EngineConfig.builder().environment(Map.of());
        for (int i = 0; i < settings.length; i += 2) {
            c.set(settings[i], settings[i + 1]);
        }
        EngineConfig config = c.build();
        EfaTransport t = new EfaTransport(new Context(name, config), new EfaSettings(config));
        BY_NAME.put(name, t);
        return t;
    }

    /** The descriptor {@code t} would publish with {@code regions} registered as {@code regs}. */
    static SegmentDescriptor describe(String name, EfaTransport t, MemoryRegion region, RegionRegistration reg) {
        JsonObject d = new JsonObject();
        d.addProperty("name", name);
        d.addProperty("protocol", "efa");
        t.describe(d);
        JsonObject buffer = reg.descriptorFields();
        buffer.addProperty("name", "cpu:0");
        buffer.addProperty("addr", region.address());
        buffer.addProperty("length", region.length());
        JsonArray buffers = new JsonArray();
        buffers.add(buffer);
        d.add("buffers", buffers);
        return SegmentDescriptor.fromJson(d);
    }

    @Override
    public void close() {
        a.close();
        b.close();
        BY_NAME.values().removeIf(t -> t == a || t == b);
    }

    private record Context(String name, EngineConfig config) implements TransportContext {
        @Override
        public String localHostname() {
            return "127.0.0.1";
        }

        @Override
        public String localSegmentName() {
            return name;
        }

        @Override
        public LocalMemory localMemory() {
            return (address, length) -> null;
        }

        @Override
        public JsonObject connect(String segmentName, JsonObject request, Duration timeout) {
            EfaTransport t = BY_NAME.get(segmentName);
            return t != null ? t.onConnectionRequest(request) : OTHERS.get(segmentName).apply(request);
        }
    }

    /** Requests of one opcode between one local and one remote region, with their outcome. */
    static final class Work implements Submission {
        final Opcode op;
        final long[] local;
        final long[] remote;
        final long[] length;
        final RegionRegistration registration;
        final BufferDescriptor buffer;
        final int[] parts;
        final TransferStatus[] status;
        final String[] reason;
        /** Requests the engine ended (cancelled) while their parts are still to be reported. */
        private final boolean[] ended;
        private final CountDownLatch done;

        Work(Opcode op, long[] local, long[] remote, long[] length, RegionRegistration registration,
                BufferDescriptor buffer) {
            this.op = op;
            this.local = local;
            this.remote = remote;
            this.length = length;
            this.registration = registration;
            this.buffer = buffer;
            this.parts = new int[local.length];
            java.util.Arrays.fill(parts, 1);
            this.status = new TransferStatus[local.length];
            this.reason = new String[local.length];
            this.ended = new boolean[local.length];
            this.done = new CountDownLatch(local.length);
        }

        boolean await() throws InterruptedException {
            return done.await(30, TimeUnit.SECONDS);
        }

        @Override public int size() { return local.length; }
        @Override public Opcode opcode(int i) { return op; }
        @Override public long localAddress(int i) { return local[i]; }
        @Override public long remoteAddress(int i) { return remote[i]; }
        @Override public long length(int i) { return length[i]; }
        @Override public boolean localIsCuda(int i) { return false; }
        @Override public RegionRegistration localRegistration(int i) { return registration; }
        @Override public BufferDescriptor remoteBuffer(int i) { return buffer; }
        @Override public long deadlineNanos() { return System.nanoTime() + TimeUnit.SECONDS.toNanos(30); }
        @Override public boolean isAborted() { return false; }
        @Override public synchronized void expectParts(int i, int n) { parts[i] = n; }
        @Override public void partDone(int i, TransferStatus s) { report(i, s, null); }
        @Override public void partFailed(int i, TransferStatus s, String why) { report(i, s, why); }

        @Override
        public synchronized void fail(int i, TransferStatus s, String why) {
            if (parts[i] == 0) {
                return; // reported already: the engine's fail is a no-op then
            }
            parts[i] = 1;
            report(i, s, why);
        }

        @Override public synchronized boolean isDone(int i) { return parts[i] == 0 || ended[i]; }

        /** Ends request {@code i} as the engine does on cancellation: done, its part still to be reported. */
        synchronized void endByEngine(int i) {
            ended[i] = true;
        }

        /** Requests whose parts were not all reported. */
        synchronized int unreported() {
            int n = 0;
            for (int p : parts) {
                n += p > 0 ? 1 : 0;
            }
            return n;
        }

        private synchronized void report(int i, TransferStatus s, String why) {
            if (parts[i] <= 0) {
                throw new IllegalStateException("request " + i + " reported once too often");
            }
            if (status[i] == null || s != TransferStatus.COMPLETED) {
                status[i] = s;
                reason[i] = why != null ? why : reason[i];
            }
            if (--parts[i] == 0) {
                done.countDown();
            }
        }
    }
}
