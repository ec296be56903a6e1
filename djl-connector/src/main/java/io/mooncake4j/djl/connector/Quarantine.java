package io.mooncake4j.djl.connector;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Decode blocks held back after an abandoned transfer, since the prefill worker may still be
 * writing into them: freed after {@code MC_KV_QUARANTINE}, or as soon as the peer's final word
 * about the request arrives.
 */
final class Quarantine {
    private final ConnectorContext ctx;
    private final Duration duration;
    private final Map<String, int[]> held = new ConcurrentHashMap<>();

    Quarantine(ConnectorContext ctx) {
        this.ctx = ctx;
        this.duration = ctx.config.quarantine(ctx.engine.config().transferTimeout());
    }

    /** Holds a request's blocks (their references) until the quarantine ends. */
    void hold(String requestId, int[] blocks) {
        ctx.counters.quarantines.incrementAndGet();
        int[] previous = held.put(requestId, blocks);
        if (previous != null) {
            ctx.allocator.release(previous);
        }
        ctx.schedule(() -> {
            if (held.remove(requestId, blocks)) {
                ctx.allocator.release(blocks);
            }
        }, duration);
    }

    /** Frees a request's blocks now: the peer said it no longer writes. */
    void end(String requestId) {
        int[] blocks = held.remove(requestId);
        if (blocks != null) {
            ctx.allocator.release(blocks);
        }
    }

    /** Frees every held block (the connector closes). */
    void endAll() {
        for (String rid : new ArrayList<>(held.keySet())) {
            end(rid);
        }
    }
}
