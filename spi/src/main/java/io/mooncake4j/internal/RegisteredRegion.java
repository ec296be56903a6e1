package io.mooncake4j.internal;

import com.google.gson.JsonObject;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.spi.PinnedRegion;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/** A registered region with a pin count that holds off unregistration while memory is in use. */
public final class RegisteredRegion implements PinnedRegion {
    private final MemoryRegion region;
    private final JsonObject transportFields;
    private final AtomicInteger pins = new AtomicInteger();
    private volatile boolean removed;

    RegisteredRegion(MemoryRegion region, JsonObject transportFields) {
        this.region = region;
        this.transportFields = transportFields;
    }

    @Override
    public MemoryRegion region() {
        return region;
    }

    public JsonObject transportFields() {
        return transportFields;
    }

    long start() {
        return region.address();
    }

    long end() {
        return region.end();
    }

    /** Takes a pin unless the region is being removed. */
    boolean tryPin() {
        pins.incrementAndGet();
        if (removed) {
            pins.decrementAndGet();
            return false;
        }
        return true;
    }

    @Override
    public void unpin() {
        pins.decrementAndGet();
    }

    void markRemoved() {
        removed = true;
    }

    /** Pins held now: transfers (local or served to peers) that may still touch the memory. */
    public int pins() {
        return pins.get();
    }

    /**
     * Waits up to {@code timeout} for every pin to be released; returns whether none is left. Only
     * meaningful after removal, when no new pin can be taken.
     */
    public boolean awaitUnpinned(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        long sleep = 10_000;
        while (pins.get() > 0) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            LockSupport.parkNanos(sleep);
            sleep = Math.min(sleep * 2, 5_000_000);
        }
        return true;
    }
}
