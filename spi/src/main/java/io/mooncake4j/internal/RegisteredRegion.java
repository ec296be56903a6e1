package io.mooncake4j.internal;

import com.google.gson.JsonObject;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.spi.PinnedRegion;
import java.util.concurrent.atomic.AtomicInteger;

/** A registered region with a pin count that holds off unregistration while memory is in use. */
public final class RegisteredRegion implements PinnedRegion {
    private final MemoryRegion region;
    private final JsonObject transportFields;
    private final boolean remote;
    private final AtomicInteger pins = new AtomicInteger();
    private volatile boolean removed;

    RegisteredRegion(MemoryRegion region, JsonObject transportFields, boolean remote) {
        this.region = region;
        this.transportFields = transportFields;
        this.remote = remote;
    }

    /** Whether peers may reach it ({@link io.mooncake4j.RegionAccess#REMOTE}): published and servable. */
    public boolean isRemote() {
        return remote;
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

    int pins() {
        return pins.get();
    }
}
