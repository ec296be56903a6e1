package io.mooncake4j.internal;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceCopier;
import io.mooncake4j.spi.DeviceMemoryProvider;
import io.mooncake4j.spi.DeviceMemoryProviders;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The engine's device memory (GPU memory): the {@link DeviceMemoryProviders} found once when the
 * engine starts, location checks at registration, and one {@link DeviceCopier} per device for
 * same-process copies, opened the first time a copy touches the device and closed with the engine.
 */
public final class Devices implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Devices.class);

    private final DeviceMemoryProviders providers;
    private final ConcurrentMap<MemoryLocation, DeviceCopier> copiers = new ConcurrentHashMap<>();
    private volatile boolean closed;

    public Devices(DeviceMemoryProviders providers) {
        this.providers = providers;
    }

    /**
     * The providers on the class path (through the SPI's and the thread context classloader); one
     * that fails to instantiate is logged and skipped.
     */
    public static Devices load() {
        return new Devices(new DeviceMemoryProviders(ProviderLoader.load(DeviceMemoryProvider.class)));
    }

    /** The providers this engine found. */
    public DeviceMemoryProviders providers() {
        return providers;
    }

    /**
     * The region as it is registered: {@code *} becomes the location the first available provider
     * finds ({@code cuda:N} or {@code cpu:0}; {@code cpu:0} without one); a device location must be
     * served by an available provider and must be where the address lies.
     *
     * @throws MooncakeException REGISTRATION naming what to add when no provider serves the location,
     *     or when the memory lies elsewhere
     */
    public MemoryRegion resolve(MemoryRegion r) {
        MemoryLocation location = r.location();
        if (location.kind().equals("*")) {
            for (DeviceMemoryProvider p : providers.all()) {
                if (p.isAvailable()) {
                    return new MemoryRegion(r.address(), r.length(), p.locate(r.address()));
                }
            }
            return new MemoryRegion(r.address(), r.length(), MemoryLocation.CPU);
        }
        if (!location.isCuda()) {
            return r;
        }
        MemoryLocation actual = providers.require(location).locate(r.address());
        if (!actual.equals(location)) {
            throw new MooncakeException(
                    ErrorCode.REGISTRATION,
                    "0x" + Long.toHexString(r.address()) + " is in " + actual + ", not " + location
                            + ": register it at " + actual + " or at * (detected)");
        }
        return r;
    }

    /** Allocates {@code length} bytes on {@code location} ({@code cuda:N}). */
    public DeviceAllocation allocate(MemoryLocation location, long length) {
        return providers.require(location).allocate(location, length);
    }

    /** Tells the provider that an unregistered device region's addresses may be reused. */
    public void forget(MemoryRegion r) {
        if (r.location().isCuda()) {
            try {
                providers.require(r.location()).forget(r.address(), r.length());
            } catch (RuntimeException e) {
                LOG.warn("could not drop the cached ranges of {}: {}", r, e.toString());
            }
        }
    }

    /**
     * The copier of device {@code location} ({@code cuda:N}), opened on first use.
     *
     * @throws MooncakeException CLOSED once the engine closed; REGISTRATION when no provider serves it
     */
    public DeviceCopier copier(MemoryLocation location) {
        DeviceCopier c = copiers.get(location);
        if (c != null) {
            return c;
        }
        synchronized (copiers) {
            if (closed) {
                throw new MooncakeException(ErrorCode.CLOSED, "the engine closed: no more copies on " + location);
            }
            return copiers.computeIfAbsent(location, l -> providers.require(l).openCopier(l.index()));
        }
    }

    /** Closes every copier, each waiting (bounded) for its copies in flight. Idempotent. */
    @Override
    public void close() {
        synchronized (copiers) {
            closed = true;
        }
        for (DeviceCopier c : copiers.values()) {
            try {
                c.close();
            } catch (RuntimeException e) {
                LOG.warn("closing the device copier {} failed", c, e);
            }
        }
        copiers.clear();
    }
}
