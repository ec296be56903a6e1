package io.mooncake4j.internal;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Per request of a batch round: how many parts the transport still has to report, and the pinned
 * local region, released when the last part reports. A request's status may end earlier (deadline,
 * cancellation) while its memory stays pinned until the transport has reported every part it issued.
 *
 * <p>A batch keeps one ledger across rounds while every pin of the last round was released (no
 * allocation in steady state); when it is reset while a timed-out round's parts are still out, it
 * takes a fresh ledger and the old one stays with that round's submissions until they report.
 *
 * <p>Each parts word is {@code epoch << 32 | parts left}: a report about another round changes
 * nothing.
 */
public final class ReleaseLedger {
    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);

    private final long[] parts;
    private final RegisteredRegion[] pins;

    public ReleaseLedger(int capacity) {
        this.parts = new long[capacity];
        this.pins = new RegisteredRegion[capacity];
    }

    /**
     * Starts requests 0 to {@code size - 1} of round {@code epoch}: one part each, nothing pinned
     * yet. Unordered stores: the caller publishes the round to other threads with a volatile write (or a
     * hand-off) after this, and a report about an earlier round fails its epoch check either way.
     */
    public void start(int size, int epoch) {
        long first = ((long) epoch << 32) | 1;
        for (int i = 0; i < size; i++) {
            if (pins[i] != null) { // a fresh ledger has none: no reference store (and its GC barrier) per request
                pins[i] = null;
            }
            LONGS.setOpaque(parts, i, first); // atomic, unordered: a late report of an earlier round reads it whole
        }
    }

    /** Records the pin of request {@code i}'s local memory (taken by the submitting thread). */
    public void pinned(int i, RegisteredRegion pin) {
        pins[i] = pin;
    }

    /**
     * The region pinned for request {@code i} in its latest round, or null. Kept after the pin is
     * released, until the request's next round starts.
     */
    public RegisteredRegion region(int i) {
        return pins[i];
    }

    /** Request {@code i} of round {@code epoch} will be reported in {@code n} parts. */
    public void expect(int i, int n, int epoch) {
        if (n <= 0) {
            throw new IllegalArgumentException("parts must be positive: " + n);
        }
        long p;
        do {
            p = (long) LONGS.getVolatile(parts, i);
            if ((int) (p >>> 32) != epoch || (int) p <= 0) {
                return; // about another round, or everything was reported already
            }
        } while (!LONGS.compareAndSet(parts, i, p, ((long) epoch << 32) | n));
    }

    /**
     * One part of request {@code i} of round {@code epoch} was reported; on the last one the pin is
     * released. Returns whether this was the last part.
     */
    public boolean reportPart(int i, int epoch) {
        long p;
        do {
            p = (long) LONGS.getVolatile(parts, i);
            if ((int) (p >>> 32) != epoch || (int) p <= 0) {
                return false; // another round, or one report too many
            }
        } while (!LONGS.compareAndSet(parts, i, p, p - 1));
        if ((int) p == 1) {
            release(i);
            return true;
        }
        return false;
    }

    /**
     * The one part of request {@code i} of round {@code epoch}, a same-process device copy, was
     * reported by its copy; returns whether it was outstanding. A request holding no pin of its own
     * (its regions are the round's) is marked reported with a plain read and an opaque write rather
     * than a compare-and-set: only its copy reports it, and a second report racing it (a failed
     * submission's {@link #reportAll}) is told apart by the caller's compare-and-set of the status.
     * The thread ending a round's copies thus takes one atomic update per request, not two, on cache
     * lines the submitting thread wrote. A request to a peer (its local memory pinned here) reports
     * as {@link #reportPart} does.
     */
    public boolean reportCopy(int i, int epoch) {
        if (pins[i] != null) {
            return reportPart(i, epoch);
        }
        long one = ((long) epoch << 32) | 1;
        if ((long) LONGS.getOpaque(parts, i) != one) {
            return false; // another round, or reported already
        }
        LONGS.setOpaque(parts, i, (long) epoch << 32);
        return true;
    }

    /**
     * Every part of request {@code i} of round {@code epoch} is reported at once (none was issued);
     * releases the pin. Returns whether anything was left to report.
     */
    public boolean reportAll(int i, int epoch) {
        long p;
        do {
            p = (long) LONGS.getVolatile(parts, i);
            if ((int) (p >>> 32) != epoch || (int) p <= 0) {
                return false;
            }
        } while (!LONGS.compareAndSet(parts, i, p, (long) epoch << 32));
        release(i);
        return true;
    }

    /**
     * Request {@code i} of round {@code epoch}, which no transport has seen, ends here: its pin is
     * released without a compare-and-set (only the submitting thread knows the request).
     */
    public void endLocally(int i, int epoch) {
        LONGS.setRelease(parts, i, (long) epoch << 32);
        release(i);
    }

    private void release(int i) {
        RegisteredRegion pin = pins[i];
        if (pin != null) {
            pin.unpin();
        }
    }

    /**
     * Whether a part of one of the first {@code size} requests is still to be reported (so its memory
     * is still pinned). A scan, for the rare reset after a timeout, instead of a shared counter on
     * every request.
     */
    public boolean holdsPins(int size) {
        for (int i = 0; i < size; i++) {
            if ((int) (long) LONGS.getVolatile(parts, i) > 0) {
                return true;
            }
        }
        return false;
    }
}
