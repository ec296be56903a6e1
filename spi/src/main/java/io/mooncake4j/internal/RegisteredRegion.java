package io.mooncake4j.internal;

import com.google.gson.JsonObject;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.spi.PinnedRegion;
import io.mooncake4j.spi.RegionRegistration;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A registered region with a pin count that holds off unregistration while memory is in use, and
 * what each installed transport made of it (by the transport's index in {@link InstalledTransports}).
 */
public final class RegisteredRegion implements PinnedRegion {
    private final MemoryRegion region;
    private final RegionRegistration[] registrations;
    private final JsonObject transportFields;
    private final AtomicInteger pins = new AtomicInteger();
    private volatile boolean removed;

    RegisteredRegion(MemoryRegion region, RegionRegistration[] registrations, JsonObject transportFields) {
        this.region = region;
        this.registrations = registrations;
        this.transportFields = transportFields;
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

    int pins() {
        return pins.get();
    }
}
