package io.mooncake4j.internal;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.RegionAccess;
import io.mooncake4j.spi.LocalMemory;
import io.mooncake4j.spi.PinnedRegion;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The engine's registered memory: a sorted, copy-on-write array of non-overlapping regions. Lookups
 * ({@link #pin}, {@link #pinRegion}) take no lock and allocate nothing; registration changes are
 * serialised. {@link #pin}, which serves peers, never yields a region registered {@link
 * RegionAccess#LOCAL_ONLY}.
 */
public final class MemoryRegistry implements LocalMemory {
    private static final RegisteredRegion[] EMPTY = new RegisteredRegion[0];
    private volatile RegisteredRegion[] regions = EMPTY;
    private final Object writeLock = new Object();

    /**
     * Registers regions all or nothing: each must not overlap any registered region or another in the
     * batch, and is registered on every installed transport ({@link InstalledTransports#register},
     * itself all or nothing). When a region is refused, the regions of the batch registered before it
     * are unregistered from the transports again and the registry is left unchanged. {@code access}
     * applies to every region of the batch.
     */
    public void register(List<MemoryRegion> batch, RegionAccess access, InstalledTransports transports) {
        synchronized (writeLock) {
            List<RegisteredRegion> added = new ArrayList<>(batch.size());
            RegisteredRegion[] current = regions;
            try {
                for (MemoryRegion r : batch) {
                    RegisteredRegion overlap = findOverlap(current, r);
                    if (overlap == null) {
                        for (RegisteredRegion a : added) {
                            if (overlaps(a.region(), r)) {
                                overlap = a;
                            }
                        }
                    }
                    if (overlap != null) {
                        throw new MooncakeException(
                                ErrorCode.REGISTRATION,
                                r + " overlaps registered " + overlap.region()
                                        + ": unregister it first, or register a disjoint range");
                    }
                    RegisteredRegion registered = transports.register(r);
                    if (access == RegionAccess.LOCAL_ONLY) {
                        registered.markLocalOnly(); // before `regions` publishes it
                    }
                    added.add(registered);
                }
            } catch (RuntimeException | Error e) {
                for (int i = added.size() - 1; i >= 0; i--) {
                    transports.unregister(added.get(i));
                }
                throw e;
            }
            RegisteredRegion[] next = Arrays.copyOf(current, current.length + added.size());
            for (int i = 0; i < added.size(); i++) {
                next[current.length + i] = added.get(i);
            }
            Arrays.sort(next, (a, b) -> Long.compareUnsigned(a.start(), b.start()));
            regions = next;
        }
    }

    /**
     * Removes the region starting at {@code address}: from now on it cannot be pinned, so once its
     * pins drain ({@link RegisteredRegion#awaitUnpinned}) nothing touches it through this registry.
     *
     * @return the removed region
     * @throws MooncakeException REGISTRATION when no region starts there
     */
    public RegisteredRegion remove(long address) {
        synchronized (writeLock) {
            RegisteredRegion[] current = regions;
            RegisteredRegion victim = null;
            List<RegisteredRegion> next = new ArrayList<>(current.length);
            for (RegisteredRegion r : current) {
                if (r.start() == address && victim == null) {
                    victim = r;
                } else {
                    next.add(r);
                }
            }
            if (victim == null) {
                throw new MooncakeException(
                        ErrorCode.REGISTRATION,
                        "no registered region starts at 0x" + Long.toHexString(address)
                                + ": pass the address given to registerMemory");
            }
            victim.markRemoved();
            regions = next.toArray(EMPTY);
            return victim;
        }
    }

    /** Whether a region starts at {@code address}. */
    public boolean isRegisteredAt(long address) {
        return at(address) != null;
    }

    /** The region that starts at {@code address}, or null. */
    public RegisteredRegion at(long address) {
        for (RegisteredRegion r : regions) {
            if (r.start() == address) {
                return r;
            }
        }
        return null;
    }

    /** For a peer's request: refuses {@link RegionAccess#LOCAL_ONLY} regions as if unregistered. */
    @Override
    public PinnedRegion pin(long address, long length) {
        RegisteredRegion r = find(address, length);
        return r != null && r.isRemote() && r.tryPin() ? r : null;
    }

    /**
     * For this engine's own transfers: pins any registered region, local-only ones included, with the
     * registered region's own type (its transport registrations).
     */
    public RegisteredRegion pinRegion(long address, long length) {
        RegisteredRegion r = find(address, length);
        return r != null && r.tryPin() ? r : null;
    }

    private RegisteredRegion find(long address, long length) {
        if (length <= 0 || Long.compareUnsigned(address + length, address) <= 0) {
            return null;
        }
        RegisteredRegion r = floor(regions, address);
        return r == null || Long.compareUnsigned(address + length, r.end()) > 0 ? null : r;
    }

    /** A snapshot of the registered regions in address order, with their transport fields. */
    public List<RegisteredRegion> snapshot() {
        return List.of(regions);
    }

    private static RegisteredRegion floor(RegisteredRegion[] rs, long address) {
        int lo = 0;
        int hi = rs.length - 1;
        RegisteredRegion best = null;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            RegisteredRegion r = rs[mid];
            if (Long.compareUnsigned(r.start(), address) <= 0) {
                best = r;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return best;
    }

    private static RegisteredRegion findOverlap(RegisteredRegion[] rs, MemoryRegion r) {
        for (RegisteredRegion x : rs) {
            if (overlaps(x.region(), r)) {
                return x;
            }
        }
        return null;
    }

    private static boolean overlaps(MemoryRegion a, MemoryRegion b) {
        return Long.compareUnsigned(a.address(), b.end()) < 0
                && Long.compareUnsigned(b.address(), a.end()) < 0;
    }
}
