package io.mooncake4j.internal;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.LocalMemory;
import io.mooncake4j.spi.PinnedRegion;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;

/**
 * The engine's registered memory: a sorted, copy-on-write array of non-overlapping regions. Lookups
 * ({@link #pin}) take no lock and allocate nothing; registration changes are serialised.
 */
public final class MemoryRegistry implements LocalMemory {
    private static final RegisteredRegion[] EMPTY = new RegisteredRegion[0];
    private volatile RegisteredRegion[] regions = EMPTY;
    private final Object writeLock = new Object();

    /**
     * Registers regions all or nothing: each must not overlap any registered region or another in the
     * batch, and is registered on every installed transport ({@link InstalledTransports#register},
     * itself all or nothing). When a region is refused, the regions of the batch registered before it
     * are unregistered from the transports again and the registry is left unchanged.
     */
    public void register(List<MemoryRegion> batch, InstalledTransports transports) {
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
                    added.add(transports.register(r));
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
     * Removes the region starting at {@code address}, then waits up to {@code drainTimeout} for
     * transfers using it to finish, then hands it to {@code afterDrain} (also when it did not drain).
     *
     * @return the removed region
     * @throws MooncakeException REGISTRATION when no region starts there, or when in-flight transfers
     *     still use it after the timeout (the region stays unregistered)
     */
    public MemoryRegion unregister(
            long address, Duration drainTimeout, Runnable beforeDrain, Consumer<RegisteredRegion> afterDrain) {
        RegisteredRegion victim = null;
        synchronized (writeLock) {
            RegisteredRegion[] current = regions;
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
        }
        try {
            beforeDrain.run();
            long deadline = System.nanoTime() + drainTimeout.toNanos();
            long sleep = 10_000;
            while (victim.pins() > 0) {
                if (System.nanoTime() - deadline > 0) {
                    throw new MooncakeException(
                            ErrorCode.REGISTRATION,
                            victim.region() + " is unregistered but " + victim.pins()
                                    + " transfers still use it after " + drainTimeout
                                    + ": do not free it until they end");
                }
                LockSupport.parkNanos(sleep);
                sleep = Math.min(sleep * 2, 5_000_000);
            }
        } finally {
            afterDrain.accept(victim);
        }
        return victim.region();
    }

    /** Whether a region starts at {@code address}. */
    public boolean isRegisteredAt(long address) {
        for (RegisteredRegion r : regions) {
            if (r.start() == address) {
                return true;
            }
        }
        return false;
    }

    @Override
    public PinnedRegion pin(long address, long length) {
        return pinRegion(address, length);
    }

    /** {@link #pin} with the registered region's own type (its transport registrations). */
    public RegisteredRegion pinRegion(long address, long length) {
        if (length <= 0 || Long.compareUnsigned(address + length, address) <= 0) {
            return null;
        }
        RegisteredRegion r = floor(regions, address);
        if (r == null || Long.compareUnsigned(address + length, r.end()) > 0) {
            return null;
        }
        return r.tryPin() ? r : null;
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
