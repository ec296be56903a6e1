package io.mooncake4j.transport.tcp;

import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;

/**
 * The staging memory of served connections (an {@link InputStage} and a reply buffer each, and their
 * buffer views), mapped
 * outside the Java heap and reused: a peer that opens a connection per request (Mooncake's default
 * initiator) would otherwise cost a 512 KiB zeroed allocation per request, freed only by a GC. At
 * most {@code maxIdle} sets are kept for reuse; the others are unmapped as their connection ends, so
 * connection churn does not grow the resident set. Thread safe.
 */
final class StagingPool implements AutoCloseable {
    static final int IN_BYTES = 256 << 10;
    static final int OUT_BYTES = 256 << 10;
    static final int SET_BYTES = IN_BYTES + OUT_BYTES;

    private final int maxIdle;
    private final int outCopyCount;
    private final ArrayDeque<Staging> idle = new ArrayDeque<>();
    private int mapped; // sets mapped now, idle or in use
    private boolean closed;

    /** Keeps up to {@code maxIdle} sets for reuse; each has {@code outCopyCount} views of its reply buffer. */
    StagingPool(int maxIdle, int outCopyCount) {
        this.maxIdle = maxIdle;
        this.outCopyCount = outCopyCount;
    }

    /** One connection's staging memory; confined to the connection's thread while it holds it. */
    static final class Staging {
        final long address;
        final InputStage in;
        final ByteBuffer out;
        final long outAddress;
        /** Views of {@link #out} for gathering writes, one per entry. */
        final ByteBuffer[] outCopies;
        /** Views of registered memory (they describe addresses only, so they outlive connections). */
        final WindowCache views = new WindowCache();

        private Staging(long address, int outCopyCount) {
            this.address = address;
            this.in = new InputStage(NativeMemory.wrap(address, IN_BYTES));
            this.outAddress = address + IN_BYTES;
            this.out = NativeMemory.wrap(outAddress, OUT_BYTES);
            this.outCopies = new ByteBuffer[outCopyCount];
            for (int i = 0; i < outCopyCount; i++) {
                outCopies[i] = out.duplicate();
            }
        }
    }

    /**
     * An idle set, or a newly mapped one.
     *
     * @throws OutOfMemoryError when the memory cannot be mapped
     */
    Staging acquire() {
        synchronized (this) {
            Staging s = idle.pollFirst();
            if (s != null) {
                return s;
            }
            mapped++;
        }
        try {
            return new Staging(NativeMemory.map(SET_BYTES), outCopyCount);
        } catch (RuntimeException | Error e) {
            synchronized (this) {
                mapped--;
            }
            throw e;
        }
    }

    /** Takes back a set that its connection no longer uses: kept for reuse or unmapped. */
    void release(Staging s) {
        synchronized (this) {
            if (!closed && idle.size() < maxIdle) {
                s.in.clear();
                idle.addFirst(s); // the most recently used is the most likely to be resident
                return;
            }
            mapped--;
        }
        NativeMemory.unmap(s.address, SET_BYTES);
    }

    /** Bytes mapped now, idle or in use. */
    synchronized long mappedBytes() {
        return (long) mapped * SET_BYTES;
    }

    /** Unmaps the idle sets; sets in use are unmapped as they come back. Idempotent. */
    @Override
    public void close() {
        ArrayDeque<Staging> free;
        synchronized (this) {
            closed = true;
            free = new ArrayDeque<>(idle);
            mapped -= idle.size();
            idle.clear();
        }
        for (Staging s : free) {
            NativeMemory.unmap(s.address, SET_BYTES);
        }
    }
}
