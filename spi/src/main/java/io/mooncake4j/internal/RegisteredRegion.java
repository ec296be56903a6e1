package io.mooncake4j.internal;

import com.google.gson.JsonObject;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.spi.PinnedRegion;
import io.mooncake4j.spi.RegionRegistration;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A registered region with a pin count that holds off unregistration while memory is in use, and
 * what each installed transport made of it (by the transport's index in {@link InstalledTransports}).
 */
public final class RegisteredRegion implements PinnedRegion {
    private final MemoryRegion region;
    private final RegionRegistration[] registrations;
    private final JsonObject transportFields;
    // set before the region is published in the registry (a volatile write), never after
    private boolean remote = true;
    private final AtomicInteger pins = new AtomicInteger();
    private volatile boolean removed;

    RegisteredRegion(MemoryRegion region, RegionRegistration[] registrations, JsonObject transportFields) {
        this.region = region;
        this.registrations = registrations;
        this.transportFields = transportFields;
    }

    /** Whether peers may reach it ({@link io.mooncake4j.RegionAccess#REMOTE}): published and servable. */
    public boolean isRemote() {
        return remote;
    }

    /** Makes it {@link io.mooncake4j.RegionAccess#LOCAL_ONLY}; only before it is published. */
    void markLocalOnly() {
        remote = false;
    }

    @Override
    public MemoryRegion region() {
        return region;
    }

    /** The per-buffer descriptor fields of every installed transport, merged. */
    public JsonObject transportFields() {
        return transportFields;
    }

    /** What the installed transport of index {@code transport} returned when it registered the region. */
    public RegionRegistration registration(int transport) {
        return registrations[transport];
    }

    RegionRegistration[] registrations() {
        return registrations;
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
