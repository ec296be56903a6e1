package io.mooncake4j.internal;

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
    private RegisteredRegion[] held = new RegisteredRegion[4];
    private int count;
    @SuppressWarnings("unused") // through COPIES
    private volatile int copies; // device copies of the round not yet reported

    public RoundPins(MemoryRegistry registry) {
        this.registry = registry;
    }

    /**
     * The registered region holding {@code [address, address + length)}, pinned for this round, or
     * null when no single registered region holds it. The range must not wrap around.
     */
    public RegisteredRegion pin(long address, long length) {
        for (int k = 0; k < count; k++) {
            RegisteredRegion r = held[k];
            if (Long.compareUnsigned(address, r.start()) >= 0 && Long.compareUnsigned(address + length, r.end()) <= 0) {
                return r;
            }
        }
        RegisteredRegion r = registry.pinRegion(address, length);
        if (r != null) {
            if (count == held.length) {
                held = Arrays.copyOf(held, 2 * count);
            }
            held[count++] = r;
        }
        return r;
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
