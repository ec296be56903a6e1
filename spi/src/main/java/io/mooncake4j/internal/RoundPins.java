package io.mooncake4j.internal;

import io.mooncake4j.MemoryLocation;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * The pins of one submitted round's same-process requests: one pin per registered region per round
 * instead of one per request, so that a batch of 128 copies between two regions costs the regions'
 * pin counts four atomic updates, not 512 (which, shared with the thread that ends the copies,
 * bounced the counts' cache lines between cores). They are released when the submitting thread has
 * walked the round, or, when the round has device copies, once every copy has reported ({@link
 * #releaseAfter}, {@link #copyReported}).
 *
 * <p>Each region the round holds has a slot ({@link #pin}) with its bounds and location copied into
 * the round's own arrays: a request in a region the round already holds is matched against those,
 * without the registry's lookup and without reading the region's object, whose cache line the pin
 * count's updates by the thread ending an earlier round's copies may share.
 *
 * <p>A region stays valid for the whole round once its first request pinned it: unregistration
 * waits for the pin, as if every request of the round had pinned it then. Walked by the submitting
 * thread only; {@link #copyReported} from any thread.
 */
public final class RoundPins {
    private static final VarHandle COPIES;

    static {
        try {
            COPIES = MethodHandles.lookup().findVarHandle(RoundPins.class, "copies", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final MemoryRegistry registry;
    private RegisteredRegion[] held = new RegisteredRegion[2];
    private long[] starts = new long[2];
    private long[] ends = new long[2];
    private MemoryLocation[] locations = new MemoryLocation[2];
    private boolean[] cuda = new boolean[2];
    private int count;
    @SuppressWarnings("unused") // through COPIES
    private volatile int copies; // device copies of the round not yet reported

    public RoundPins(MemoryRegistry registry) {
        this.registry = registry;
    }

    /**
     * The slot of the registered region holding {@code [address, address + length)}, pinned for this
     * round, or -1 when no single registered region holds it. The range must not wrap around.
     */
    public int pin(long address, long length) {
        long end = address + length;
        for (int k = 0; k < count; k++) {
            if (Long.compareUnsigned(address, starts[k]) >= 0 && Long.compareUnsigned(end, ends[k]) <= 0) {
                return k;
            }
        }
        return pinNew(address, length);
    }

    /** The first request of the round in a region: the registry's lookup and the new slot. */
    private int pinNew(long address, long length) {
        RegisteredRegion r = registry.pinRegion(address, length);
        if (r == null) {
            return -1;
        }
        if (count == held.length) {
            int grown = 2 * count;
            held = Arrays.copyOf(held, grown);
            starts = Arrays.copyOf(starts, grown);
            ends = Arrays.copyOf(ends, grown);
            locations = Arrays.copyOf(locations, grown);
            cuda = Arrays.copyOf(cuda, grown);
        }
        int k = count++;
        held[k] = r;
        starts[k] = r.start();
        ends[k] = r.end();
        locations[k] = r.region().location();
        cuda[k] = locations[k].isCuda();
        return k;
    }

    /** The region held in {@code slot} (from {@link #pin}). */
    public RegisteredRegion region(int slot) {
        return held[slot];
    }

    /** Where the region held in {@code slot} lives. */
    public MemoryLocation location(int slot) {
        return locations[slot];
    }

    /** Whether the region held in {@code slot} is GPU memory. */
    public boolean isCuda(int slot) {
        return cuda[slot];
    }

    /**
     * The round's regions stay pinned until {@code copies} device copies have reported ({@link
     * #copyReported}); with none, they are released now. Called once, after the last {@link #pin}.
     */
    public void releaseAfter(int copies) {
        COPIES.setVolatile(this, copies);
        if (copies == 0) {
            releaseAll();
        }
    }

    /** One device copy of the round reported; the last one releases the regions kept for them. */
    public void copyReported() {
        if ((int) COPIES.getAndAdd(this, -1) == 1) {
            releaseAll();
        }
    }

    private void releaseAll() {
        for (int k = 0; k < count; k++) {
            held[k].unpin();
        }
    }
}
