package io.mooncake4j.djl.connector;

import com.google.gson.JsonObject;

/**
 * A snapshot of a connector's counters.
 *
 * @param prefillCompleted prefill requests whose KV cache was delivered
 * @param prefillFailed prefill requests that failed or were aborted
 * @param prefillExpired prefill results nobody claimed in time
 * @param decodeCompleted decode requests whose KV cache arrived
 * @param decodeFailed decode requests that failed or timed out
 * @param bytesSent bytes written to peers (push)
 * @param bytesReceived bytes read from peers (pull)
 * @param transferRequests transfer requests submitted (after coalescing)
 * @param notificationsFailed notifications that could not be delivered
 * @param quarantines block sets held back after an abandoned transfer
 * @param messagesRefused DEST, ABORT, DONE and ERROR messages dropped because their sender is not
 *     the peer of their request (see docs/security.md)
 * @param freeBlocks free blocks in the pool now
 * @param usedBlocks referenced blocks in the pool now
 * @param activePrefills prefill requests alive now
 * @param activeDecodes decode requests waiting now
 */
public record KvConnectorMetrics(
        long prefillCompleted,
        long prefillFailed,
        long prefillExpired,
        long decodeCompleted,
        long decodeFailed,
        long bytesSent,
        long bytesReceived,
        long transferRequests,
        long notificationsFailed,
        long quarantines,
        long messagesRefused,
        int freeBlocks,
        int usedBlocks,
        int activePrefills,
        int activeDecodes) {

    /** The JSON form with snake-case names. */
    public JsonObject toJson() {
        JsonObject o = new JsonObject();
        o.addProperty("prefill_completed", prefillCompleted);
        o.addProperty("prefill_failed", prefillFailed);
        o.addProperty("prefill_expired", prefillExpired);
        o.addProperty("decode_completed", decodeCompleted);
        o.addProperty("decode_failed", decodeFailed);
        o.addProperty("bytes_sent", bytesSent);
        o.addProperty("bytes_received", bytesReceived);
        o.addProperty("transfer_requests", transferRequests);
        o.addProperty("notifications_failed", notificationsFailed);
        o.addProperty("quarantines", quarantines);
        o.addProperty("messages_refused", messagesRefused);
        o.addProperty("free_blocks", freeBlocks);
        o.addProperty("used_blocks", usedBlocks);
        o.addProperty("active_prefills", activePrefills);
        o.addProperty("active_decodes", activeDecodes);
        return o;
    }
}
