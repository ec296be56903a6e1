package io.mooncake4j.djl.connector;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.mooncake4j.spi.RateLimitedLog;
import java.time.Duration;
import org.slf4j.LoggerFactory;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;

/**
 * What moving one request's KV cache took, for the application's tables.
 *
 * @param requestId the request
 * @param role who measured: {@code prefill} or {@code decode}
 * @param mode push or pull
 * @param peer the other side's segment name
 * @param tokens the prompt positions
 * @param startToken the first position moved (positions before it were a prefix hit)
 * @param blocks blocks moved per (layer, K/V)
 * @param runs runs of blocks contiguous on both sides
 * @param requests transfer requests after coalescing: {@code layers * 2 * runs}
 * @param bytes bytes moved
 * @param transferNanos from batch submission to its end, on the side that ran the batch
 * @param totalNanos from the moment this side was ready (prefill: compute finished; decode:
 *     request issued) until the KV cache was in place and acknowledged
 */
public record KvTransferStats(
        String requestId,
        String role,
        TransferMode mode,
        String peer,
        int tokens,
        int startToken,
        int blocks,
        int runs,
        int requests,
        long bytes,
        long transferNanos,
        long totalNanos) {

    private static final RateLimitedLog MALFORMED =
            new RateLimitedLog(LoggerFactory.getLogger(KvTransferStats.class), Duration.ofSeconds(30));

    /** The transfer rate in GB/s (1e9 bytes), or 0 when nothing moved. */
    public double gigabytesPerSecond() {
        return transferNanos <= 0 ? 0 : bytes / (double) transferNanos;
    }

    /** The transfer time in milliseconds. */
    public double transferMillis() {
        return transferNanos / 1e6;
    }

    /** The same stats as seen by {@code role}, with its own total time. */
    public KvTransferStats as(String newRole, String newPeer, long newTotalNanos) {
        return new KvTransferStats(requestId, newRole, mode, newPeer, tokens, startToken, blocks, runs, requests, bytes,
                transferNanos, newTotalNanos);
    }

    /** The JSON form, with snake-case names and times in ms. */
    public JsonObject toJson() {
        JsonObject o = new JsonObject();
        o.addProperty("request_id", requestId);
        o.addProperty("role", role);
        o.addProperty("mode", mode.jsonName());
        o.addProperty("peer", peer);
        o.addProperty("tokens", tokens);
        o.addProperty("start_token", startToken);
        o.addProperty("blocks", blocks);
        o.addProperty("runs", runs);
        o.addProperty("requests", requests);
        o.addProperty("bytes", bytes);
        o.addProperty("transfer_ms", transferNanos / 1e6);
        o.addProperty("total_ms", totalNanos / 1e6);
        o.addProperty("gb_per_s", gigabytesPerSecond());
        return o;
    }

    /**
     * The stats a peer reported with DONE or RELEASE, as seen by {@code role}: by then both sides hold
     * the KV cache, so stats that are missing, not an object or malformed never fail the request. They
     * become zeros apart from the request's own identity ({@code unreported}), and one rate-limited
     * warning names the peer. One rule for both sides (docs/djl-serving.md, "Transfer stats").
     */
    static KvTransferStats reportedBy(String peer, JsonElement stats, KvTransferStats unreported, String role,
            long totalNanos) {
        KvTransferStats reported = unreported;
        if (stats != null && stats.isJsonObject()) {
            try {
                reported = fromJson(stats.getAsJsonObject());
            } catch (KvException e) {
                MALFORMED.warn(peer, "peer {} sent malformed transfer stats for request {}; counted as zeros: {}",
                        peer, unreported.requestId(), e.getMessage());
            }
        } else {
            MALFORMED.warn(peer, "peer {} sent no transfer stats object for request {}; counted as zeros",
                    peer, unreported.requestId());
        }
        return reported.as(role, peer, totalNanos);
    }

    /**
     * Zero stats for a request whose peer reported none: its identity, no blocks, no bytes, no time.
     */
    static KvTransferStats unreported(String requestId, TransferMode mode, int tokens, int startToken) {
        return new KvTransferStats(requestId, "unreported", mode, "", tokens, startToken, 0, 0, 0, 0, 0, 0);
    }

    /** Parses {@link #toJson()}'s form. */
    public static KvTransferStats fromJson(JsonObject o) {
        try {
            return new KvTransferStats(
                    o.get("request_id").getAsString(),
                    o.get("role").getAsString(),
                    TransferMode.parse(o.get("mode").getAsString()),
                    o.has("peer") && !o.get("peer").isJsonNull() ? o.get("peer").getAsString() : "",
                    o.get("tokens").getAsInt(),
                    o.get("start_token").getAsInt(),
                    o.get("blocks").getAsInt(),
                    o.get("runs").getAsInt(),
                    o.get("requests").getAsInt(),
                    o.get("bytes").getAsLong(),
                    Math.round(o.get("transfer_ms").getAsDouble() * 1e6),
                    Math.round(o.get("total_ms").getAsDouble() * 1e6));
        } catch (RuntimeException e) { // a missing field (null), a wrong JSON type, an unknown mode
            throw new KvException(KvError.PEER_ERROR, "the peer sent malformed transfer stats (" + e + ")", e);
        }
    }
}
