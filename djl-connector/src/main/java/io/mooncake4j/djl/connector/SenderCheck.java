package io.mooncake4j.djl.connector;

import io.mooncake4j.spi.RateLimitedLog;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Accepts a connector message only from the peer its request is with: a DEST from the decode engine
 * it names, an ABORT from the decode engine that gave the request its destination, a DONE or ERROR
 * from the prefill engine a fetch asked. With a secret on the engine ({@link
 * io.mooncake4j.TransferEngine#authenticatesPeers()}) the sender is the segment name the peer proved;
 * without one it is only what the peer claims, so this check then stops mistakes and naive forgeries,
 * not a determined attacker (docs/security.md).
 *
 * <p>A refused message is dropped, counted ({@code messages_refused}) and logged at WARN, at most one
 * line every 30 s: a peer can send them at will.
 */
final class SenderCheck {
    private static final Logger LOG = LoggerFactory.getLogger(SenderCheck.class);

    private final AtomicLong refused;
    private final boolean authenticated;
    private final RateLimitedLog warnings = new RateLimitedLog(LOG, Duration.ofSeconds(30));

    SenderCheck(AtomicLong refused, boolean authenticated) {
        this.refused = refused;
        this.authenticated = authenticated;
    }

    /**
     * Whether {@code sender} may send {@code m}: it is {@code expected}, the request's peer. A null
     * {@code expected} means the request has no peer to send this message, so it is refused too.
     */
    boolean accepts(String sender, String expected, KvMessage m) {
        if (expected != null && expected.equals(sender)) {
            return true;
        }
        warnings.warn("refused", "refused a {} message for request {} from {} ({}): {}; {} refused so far",
                m.type.jsonName(), m.requestId, sender, authenticated ? "authenticated" : "unauthenticated name",
                expected == null ? "no request here is with that peer" : "the request is with " + expected,
                refused.incrementAndGet());
        return false;
    }
}
