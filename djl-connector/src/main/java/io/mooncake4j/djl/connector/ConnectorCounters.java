package io.mooncake4j.djl.connector;

import io.mooncake4j.djl.kv.BlockAllocator;
import java.util.concurrent.atomic.AtomicLong;

/** A connector's counters, updated by both sides; {@link #snapshot} makes the public metrics. */
final class ConnectorCounters {
    final AtomicLong prefillCompleted = new AtomicLong();
    final AtomicLong prefillFailed = new AtomicLong();
    final AtomicLong prefillExpired = new AtomicLong();
    final AtomicLong decodeCompleted = new AtomicLong();
    final AtomicLong decodeFailed = new AtomicLong();
    final AtomicLong bytesSent = new AtomicLong();
    final AtomicLong bytesReceived = new AtomicLong();
    final AtomicLong transferRequests = new AtomicLong();
    final AtomicLong notificationsFailed = new AtomicLong();
    final AtomicLong quarantines = new AtomicLong();
    final AtomicLong messagesRefused = new AtomicLong();

    KvConnectorMetrics snapshot(BlockAllocator allocator, int activePrefills, int activeDecodes) {
        return new KvConnectorMetrics(prefillCompleted.get(), prefillFailed.get(), prefillExpired.get(),
                decodeCompleted.get(), decodeFailed.get(), bytesSent.get(), bytesReceived.get(),
                transferRequests.get(), notificationsFailed.get(), quarantines.get(), messagesRefused.get(),
                allocator.freeBlocks(),
                allocator.usedBlocks(), activePrefills, activeDecodes);
    }
}
