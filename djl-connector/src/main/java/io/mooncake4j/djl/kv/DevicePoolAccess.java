package io.mooncake4j.djl.kv;

import io.mooncake4j.HostMemory;
import io.mooncake4j.RegionAccess;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.nio.ByteBuffer;

/**
 * Host access to a pool in device memory: bytes pass through a registered host region of at most
 * {@link #CHUNK_BYTES}, and move between it and the device as transfers to the engine's own
 * segment, so the engine's device copier copies them (no CUDA call here). The region is {@link
 * RegionAccess#LOCAL_ONLY} (peers never see it), allocated on first use and freed by {@link
 * #close()}. One copy at a time.
 */
final class DevicePoolAccess implements AutoCloseable {
    /** The largest piece one transfer moves; larger copies take several. */
    static final int CHUNK_BYTES = 4 << 20;

    private final TransferEngine engine;
    private final int chunk;
    private HostMemory staging;
    private Segment self;
    private boolean closed;

    DevicePoolAccess(TransferEngine engine, long poolBytes) {
        this.engine = engine;
        this.chunk = (int) Math.min(CHUNK_BYTES, poolBytes);
    }

    /** Copies {@code src.remaining()} bytes to {@code device} (its position advances). */
    synchronized void copyIn(long device, ByteBuffer src) {
        open();
        long done = 0;
        while (src.hasRemaining()) {
            int n = Math.min(chunk, src.remaining());
            ByteBuffer piece = src.slice(src.position(), n);
            staging.buffer(0, n).put(piece);
            engine.write(self, staging.address(), device + done, n);
            src.position(src.position() + n);
            done += n;
        }
    }

    /** Fills {@code dst.remaining()} bytes from {@code device} (its position advances). */
    synchronized void copyOut(long device, ByteBuffer dst) {
        open();
        long done = 0;
        while (dst.hasRemaining()) {
            int n = Math.min(chunk, dst.remaining());
            engine.read(self, staging.address(), device + done, n);
            dst.put(staging.buffer(0, n));
            done += n;
        }
    }

    private void open() {
        if (closed) {
            throw new KvException(KvError.CLOSED, "the KV pool is closed");
        }
        if (staging == null) {
            self = engine.openSegment(engine.localSegmentName());
            staging = engine.allocate(chunk, RegionAccess.LOCAL_ONLY);
        }
    }

    /** Frees the staging region. Idempotent. */
    @Override
    public synchronized void close() {
        closed = true;
        if (staging != null) {
            staging.close();
            staging = null;
        }
    }
}
