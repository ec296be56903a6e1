package io.mooncake4j.testkit;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.PinnedRegion;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Submission;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.spi.TransportProvider;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * A test transport ({@code test-mem}) that moves bytes between engines of one JVM with memcpy, so
 * engine logic can be tested without sockets; {@link Second} is the same under another protocol
 * ({@code test-mem2}), for routing between several installed transports. Never chosen or installed
 * unless a setting names it.
 *
 * <p>Knobs for tests (static: clear them after use): segments named in {@link #STALLED} never
 * complete until aborted (then their parts are reported dropped, as a transport must); protocols in
 * {@link #REFUSING} refuse every registration; {@link #REGISTERED} shows each transport's live
 * registrations.
 */
public class InMemoryTransportProvider extends TransportProvider {
    public static final String PROTOCOL = "test-mem";
    /** Segment names whose transfers hang until aborted. */
    public static final Set<String> STALLED = ConcurrentHashMap.newKeySet();
    /** Protocols whose transports refuse every registration. */
    public static final Set<String> REFUSING = ConcurrentHashMap.newKeySet();
    /** Live registrations (region addresses) per transport, keyed {@code protocol@segment name}. */
    public static final Map<String, Set<Long>> REGISTERED = new ConcurrentHashMap<>();
    /** Submissions the engine aborted, by segment name. */
    public static final Map<String, Integer> ABORTS = new ConcurrentHashMap<>();
    /** When set, the next engines get this factory's transport instead (e.g. a Mockito mock). */
    public static volatile Function<TransportContext, Transport> override;
    private static final Map<String, TransportContext> PEERS = new ConcurrentHashMap<>();

    private final String protocol;

    public InMemoryTransportProvider() {
        this(PROTOCOL);
    }

    InMemoryTransportProvider(String protocol) {
        this.protocol = protocol;
    }

    /** The same transport as protocol {@code test-mem2}. */
    public static final class Second extends InMemoryTransportProvider {
        public static final String PROTOCOL = "test-mem2";

        public Second() {
            super(PROTOCOL);
        }
    }

    @Override
    public String protocol() {
        return protocol;
    }

    @Override
    public Throwable unavailabilityCause(EngineConfig config) {
        return null;
    }

    @Override
    public boolean isAutoSelectable(EngineConfig config) {
        return false;
    }

    @Override
    public Transport create(TransportContext context) {
        Function<TransportContext, Transport> o = override;
        if (o != null && protocol.equals(PROTOCOL)) {
            return o.apply(context);
        }
        return new MemTransport(protocol, context);
    }

    private static final class MemTransport implements Transport {
        private final String protocol;
        private final TransportContext context;
        private final Set<Submission> stalled = ConcurrentHashMap.newKeySet();
        private String registeredAs;

        MemTransport(String protocol, TransportContext context) {
            this.protocol = protocol;
            this.context = context;
        }

        @Override
        public String protocol() {
            return protocol;
        }

        @Override
        public void describe(JsonObject descriptor) {
            if (registeredAs == null && context.localSegmentName() != null) {
                registeredAs = context.localSegmentName();
                PEERS.put(protocol + "@" + registeredAs, context);
            }
        }

        private String key() {
            return protocol + "@" + context.localSegmentName();
        }

        @Override
        public RegionRegistration registerRegion(MemoryRegion region) {
            if (REFUSING.contains(protocol)) {
                throw new MooncakeException(ErrorCode.REGISTRATION, protocol + " refuses " + region + " (test)");
            }
            REGISTERED.computeIfAbsent(key(), k -> ConcurrentHashMap.newKeySet()).add(region.address());
            return RegionRegistration.NONE;
        }

        @Override
        public void unregisterRegion(MemoryRegion region, RegionRegistration registration) {
            Set<Long> live = REGISTERED.get(key());
            if (live != null) {
                live.remove(region.address());
            }
        }

        @Override
        public void submit(SegmentDescriptor peer, Submission work) {
            if (STALLED.contains(peer.name())) {
                stalled.add(work);
                if (work.isAborted() && stalled.remove(work)) {
                    drop(work);
                }
                return;
            }
            TransportContext target = PEERS.get(protocol + "@" + peer.name());
            for (int i = 0; i < work.size(); i++) {
                if (target == null) {
                    work.fail(i, TransferStatus.FAILED, "peer gone");
                    continue;
                }
                PinnedRegion pin = target.localMemory().pin(work.remoteAddress(i), work.length(i));
                if (pin == null) {
                    work.partDone(i, TransferStatus.FAILED);
                    continue;
                }
                try {
                    if (work.opcode(i) == Opcode.WRITE) {
                        NativeMemory.copy(work.remoteAddress(i), work.localAddress(i), work.length(i));
                    } else {
                        NativeMemory.copy(work.localAddress(i), work.remoteAddress(i), work.length(i));
                    }
                } finally {
                    pin.unpin();
                }
                work.partDone(i, TransferStatus.COMPLETED);
            }
        }

        /** Reports every part of a stalled submission as dropped: nothing of it was issued. */
        private static void drop(Submission work) {
            for (int i = 0; i < work.size(); i++) {
                work.fail(i, TransferStatus.CANCELED, "dropped by abort");
            }
        }

        @Override
        public void abort(Submission work) {
            ABORTS.merge("any", 1, Integer::sum);
            if (stalled.remove(work)) {
                drop(work);
            }
        }

        @Override
        public void close() {
            for (Submission s : stalled) {
                if (stalled.remove(s)) {
                    drop(s);
                }
            }
            if (registeredAs != null) {
                PEERS.remove(protocol + "@" + registeredAs);
            }
        }
    }
}
