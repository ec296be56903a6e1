package io.mooncake4j;

import io.mooncake4j.internal.MemoryRegistry;
import io.mooncake4j.internal.RegisteredRegion;
import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * {@link TransferEngine#copyIn} and {@link TransferEngine#copyOut}: bytes between a Java buffer and
 * memory registered with the engine. Host memory is copied directly, pinned for the copy; device
 * memory through a {@link RegionAccess#LOCAL_ONLY} host staging region of at most {@link
 * #CHUNK_BYTES} and transfers to the engine's own segment, so the engine's device copier moves them
 * (no GPU library call here). One staged copy at a time. A staging region whose copy did not end
 * COMPLETED is retired, never reused, so a late copy can never mix into a later one; it is freed once
 * the copier let go of it (checked at the next staged copy, and at close), so a failed copy returns
 * at its deadline instead of waiting for the device.
 */
final class LocalCopies implements AutoCloseable {
    /** The largest piece one staged transfer moves; larger copies take several. */
    static final int CHUNK_BYTES = 4 << 20;

    private final TransferEngine engine;
    private final MemoryRegistry registry;
    private HostMemory staging; // allocated on first use; guarded by this
    private final List<HostMemory> retired = new ArrayList<>(); // guarded by this
    private boolean closed; // guarded by this

    LocalCopies(TransferEngine engine, MemoryRegistry registry) {
        this.engine = engine;
        this.registry = registry;
    }

    /**
     * WRITE: {@code buf.remaining()} bytes of {@code buf} into registered memory at {@code address};
     * READ: from there into {@code buf}. The buffer's position advances by what was copied.
     */
    void copy(Opcode op, long address, ByteBuffer buf) {
        int n = buf.remaining();
        if (n == 0) {
            return;
        }
        RegisteredRegion r = pin(address, n, op == Opcode.WRITE ? "copyIn" : "copyOut");
        try {
            if (r.region().location().isCuda()) {
                staged(op, address, buf);
            } else if (op == Opcode.WRITE) {
                NativeMemory.wrap(address, n).put(buf);
            } else {
                buf.put(NativeMemory.wrap(address, n));
            }
        } finally {
            r.unpin();
        }
    }

    private RegisteredRegion pin(long address, int length, String what) {
        RegisteredRegion r = registry.pinRegion(address, length);
        if (r == null) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, what + ": range [0x" + Long.toHexString(address)
                    + ", +" + length + ") is not inside one region registered with this engine: register it"
                    + " (or allocate it with the engine) first");
        }
        return r;
    }

    /** WRITE: {@code buf} into device memory at {@code address}; READ: device memory into {@code buf}. */
    private synchronized void staged(Opcode op, long address, ByteBuffer buf) {
        if (closed) {
            throw new MooncakeException(ErrorCode.CLOSED, "the engine closed: no more copies");
        }
        freeRetired(false);
        Segment self = engine.openSegment(engine.localSegmentName());
        for (long done = 0; buf.hasRemaining(); ) {
            int n = Math.min(CHUNK_BYTES, buf.remaining());
            HostMemory s = staging();
            boolean completed = false;
            try {
                if (op == Opcode.WRITE) {
                    s.buffer(0, n).put(buf.slice(buf.position(), n));
                    engine.write(self, s.address(), address + done, n);
                    buf.position(buf.position() + n);
                } else {
                    engine.read(self, s.address(), address + done, n);
                    buf.put(s.buffer(0, n));
                }
                completed = true;
            } finally {
                if (!completed) {
                    giveUpStaging();
                }
            }
            done += n;
        }
    }

    private HostMemory staging() {
        if (staging == null) {
            staging = engine.allocate(CHUNK_BYTES, RegionAccess.LOCAL_ONLY);
        }
        return staging;
    }

    private void giveUpStaging() {
        if (staging != null) {
            retired.add(staging);
            staging = null;
        }
    }

    /** Frees the retired staging regions no copy pins any more, or with {@code all} every one. */
    private void freeRetired(boolean all) {
        retired.removeIf(s -> {
            RegisteredRegion r = registry.at(s.address());
            if (all || r == null || r.pins() == 0) {
                s.close(); // with pins left (only with all): waits for them, or keeps the memory allocated
                return true;
            }
            return false;
        });
    }

    /** Frees the staging regions. Idempotent. */
    @Override
    public synchronized void close() {
        closed = true;
        giveUpStaging();
        freeRetired(true);
    }
}
