package io.mooncake4j.djl.connector;

import java.time.Duration;
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
    private final Map<String, Held> held = new ConcurrentHashMap<>();

    /** Blocks held for a request, and the prefill engine whose final word ends the hold (null: anyone's). */
    private record Held(String peer, int[] blocks) {}

    Quarantine(ConnectorContext ctx) {
        this.ctx = ctx;
        this.duration = ctx.config.quarantine(ctx.engine.config().transferTimeout());
    }

    /** Holds a request's blocks (their references) until the quarantine ends or {@code peer} has its final word. */
    void hold(String requestId, String peer, int[] blocks) {
        ctx.counters.quarantines.incrementAndGet();
        Held h = new Held(peer, blocks);
        Held previous = held.put(requestId, h);
        if (previous != null) {
            ctx.allocator.release(previous.blocks());
        }
        ctx.schedule(() -> release(requestId, h), duration);
    }

    /** Frees a request's blocks now when {@code sender}, the peer that may write into them, says it no longer does. */
    void end(String requestId, String sender, KvMessage m) {
        Held h = held.get(requestId);
        if (h != null && (h.peer() == null || ctx.senders.accepts(sender, h.peer(), m))) {
            release(requestId, h);
        }
    }

    /** Frees every held block (the connector closes). */
    void endAll() {
        held.forEach(this::release);
    }

    private void release(String requestId, Held h) {
        if (held.remove(requestId, h)) {
            ctx.allocator.release(h.blocks());
        }
    }
}
