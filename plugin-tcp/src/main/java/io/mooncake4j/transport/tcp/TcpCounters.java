package io.mooncake4j.transport.tcp;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * What the transport did, counted (peer misuse is also logged, rate-limited). Read through {@link
 * TcpTransport#counters()}; the keys are listed in docs/configuration.md. Thread safe.
 */
final class TcpCounters {
    // initiator side
    final LongAdder partsSent = new LongAdder();
    final LongAdder partsCompleted = new LongAdder();
    final LongAdder partsFailed = new LongAdder();
    final LongAdder bytesWritten = new LongAdder();
    final LongAdder bytesRead = new LongAdder();
    final LongAdder connectsOpened = new LongAdder();
    final LongAdder connectsFailed = new LongAdder();
    final LongAdder lanesKilled = new LongAdder();
    final LongAdder aborts = new LongAdder();
    final LongAdder callerRuns = new LongAdder(); // lane shares sent by the submitting thread
    final LongAdder gpuPrefetchedParts = new LongAdder(); // GPU WRITE parts staged while the one before was sent
    // target side
    final LongAdder served = new LongAdder();
    final LongAdder servedBytes = new LongAdder();
    final LongAdder rejected = new LongAdder();
    final LongAdder servedConnections = new LongAdder();
    final LongAdder refusedConnections = new LongAdder();
    final LongAdder protocolErrors = new LongAdder();
    final LongAdder stalls = new LongAdder();
    final LongAdder evictedConnections = new LongAdder();
    final LongAdder idleTimeouts = new LongAdder();
    final LongAdder requestTimeouts = new LongAdder();
    final LongAdder unregisterKills = new LongAdder();
    final LongAdder unauthenticated = new LongAdder(); // data connections that did not prove the secret
    final LongAdder gpuOverlappedWrites = new LongAdder(); // GPU WRITEs settled after the next request was read

    Map<String, Long> snapshot() {
        Map<String, Long> m = new LinkedHashMap<>();
        m.put("parts_sent", partsSent.sum());
        m.put("parts_completed", partsCompleted.sum());
        m.put("parts_failed", partsFailed.sum());
        m.put("bytes_written", bytesWritten.sum());
        m.put("bytes_read", bytesRead.sum());
        m.put("connects_opened", connectsOpened.sum());
        m.put("connects_failed", connectsFailed.sum());
        m.put("lanes_killed", lanesKilled.sum());
        m.put("aborts", aborts.sum());
        m.put("caller_runs", callerRuns.sum());
        m.put("gpu_prefetched_parts", gpuPrefetchedParts.sum());
        m.put("served_requests", served.sum());
        m.put("served_bytes", servedBytes.sum());
        m.put("rejected_requests", rejected.sum());
        m.put("served_connections", servedConnections.sum());
        m.put("refused_connections", refusedConnections.sum());
        m.put("protocol_errors", protocolErrors.sum());
        m.put("stalls", stalls.sum());
        m.put("evicted_connections", evictedConnections.sum());
        m.put("idle_timeouts", idleTimeouts.sum());
        m.put("request_timeouts", requestTimeouts.sum());
        m.put("unregister_kills", unregisterKills.sum());
        m.put("unauthenticated_connections", unauthenticated.sum());
        m.put("gpu_overlapped_writes", gpuOverlappedWrites.sum());
        return m;
    }
}
