package io.mooncake4j.testkit;

import com.google.gson.JsonObject;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.PinnedRegion;
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
 * engine logic can be tested without sockets. Segments named in {@link #STALLED} never complete,
 * for deadline tests. Never chosen unless named.
 */
public final class InMemoryTransportProvider extends TransportProvider {
    public static final String PROTOCOL = "test-mem";
    /** Segment names whose transfers hang until aborted. */
    public static final Set<String> STALLED = ConcurrentHashMap.newKeySet();
    /** Submissions the engine aborted, by segment name. */
    public static final Map<String, Integer> ABORTS = new ConcurrentHashMap<>();
    /** When set, the next engines get this factory's transport instead (e.g. a Mockito mock). */
    public static volatile Function<TransportContext, Transport> override;
    private static final Map<String, TransportContext> PEERS = new ConcurrentHashMap<>();

    @Override
    public String protocol() {
        return PROTOCOL;
    }

    @Override
    public boolean isAvailable() {
        return true;
    }

    @Override
    public boolean isAutoSelectable() {
        return false;
    }

    @Override
    public Transport create(TransportContext context) {
        Function<TransportContext, Transport> o = override;
        if (o != null) {
            return o.apply(context);
        }
        return new Transport() {
            private String registeredAs;

            @Override
            public String protocol() {
                return PROTOCOL;
            }

            @Override
            public void describe(JsonObject descriptor) {
                if (registeredAs == null && context.localSegmentName() != null) {
                    registeredAs = context.localSegmentName();
                    PEERS.put(registeredAs, context);
                }
            }

            @Override
            public void submit(SegmentDescriptor peer, Submission work) {
                if (STALLED.contains(peer.name())) {
                    return;
                }
                TransportContext target = PEERS.get(peer.name());
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

            @Override
            public void abort(Submission work) {
                ABORTS.merge("any", 1, Integer::sum);
            }

            @Override
            public void close() {
                if (registeredAs != null) {
                    PEERS.remove(registeredAs);
                }
            }
        };
    }
}
