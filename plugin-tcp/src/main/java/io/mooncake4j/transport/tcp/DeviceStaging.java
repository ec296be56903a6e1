package io.mooncake4j.transport.tcp;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.DeviceMemoryProvider;
import io.mooncake4j.spi.DeviceMemoryProviders;
import java.util.ArrayDeque;

/**
 * GPU-aware TCP's shared part: the engine's {@code cuda} provider (found through the transport
 * context, never by naming a GPU module) and a pool of {@link DevicePipe}s, each a set of pinned
 * staging chunks and a stager, so that a lane or a served connection that moves device memory pays
 * the pinned allocation and the streams once, not per request. Pipes left idle are kept up to a
 * bound and freed on {@link #close()}; pipes in use are freed as they come back after it. Host
 * memory never touches any of this. Thread safe.
 */
final class DeviceStaging implements AutoCloseable {
    /** Pipes kept for reuse. */
    static final int MAX_IDLE = 64;

    private final DeviceMemoryProviders providers;
    private volatile Resolved resolved; // found on first need: no device library is touched before
    final int chunkBytes;
    final int chunks;
    private final ArrayDeque<DevicePipe> idle = new ArrayDeque<>();
    private int live;
    private boolean closed;

    /** The provider that stages (null: none), or why there is none, with what to add. */
    private record Resolved(DeviceMemoryProvider provider, String unavailable) {}

    DeviceStaging(DeviceMemoryProviders providers, TcpSettings settings) {
        this.providers = providers;
        this.chunkBytes = settings.gpuStagingChunkBytes;
        this.chunks = settings.gpuStagingChunks;
    }

    private Resolved resolve() {
        Resolved r = resolved;
        if (r == null) {
            synchronized (this) {
                r = resolved;
                if (r == null) {
                    try {
                        r = new Resolved(providers.require(MemoryLocation.cuda(0)), null);
                    } catch (MooncakeException e) {
                        r = new Resolved(null, "GPU memory over tcp is staged through pinned host buffers by the engine's"
                                + " device provider, and there is none: " + e.getMessage());
                    }
                    resolved = r;
                }
            }
        }
        return r;
    }

    /** Null when device memory can be staged, or why not (what to add). Finds the provider on first call. */
    String unavailable() {
        return resolve().unavailable;
    }

    /** Whether an earlier {@link #unavailable()} found that nothing stages; false while nobody asked. */
    boolean knownUnavailable() {
        Resolved r = resolved;
        return r != null && r.unavailable != null;
    }

    /**
     * An idle pipe, or a new one (pinned chunks allocated, no stream yet).
     *
     * @throws MooncakeException when there is no provider, the transport closed, or pinned memory
     *     cannot be allocated
     */
    DevicePipe acquire() {
        Resolved r = resolve();
        if (r.provider == null) {
            throw new MooncakeException(ErrorCode.TRANSPORT_UNAVAILABLE, r.unavailable);
        }
        synchronized (this) {
            if (closed) {
                throw new MooncakeException(ErrorCode.CLOSED, "tcp transport closed");
            }
            DevicePipe p = idle.pollFirst();
            if (p != null) {
                return p;
            }
            live++;
        }
        try {
            return new DevicePipe(r.provider, chunkBytes, chunks);
        } catch (RuntimeException | Error e) {
            synchronized (this) {
                live--;
            }
            throw e;
        }
    }

    /** Takes back a pipe its user no longer uses (null is ignored): kept for reuse or freed. */
    void release(DevicePipe p) {
        if (p == null) {
            return;
        }
        synchronized (this) {
            if (!closed && idle.size() < MAX_IDLE && p.isReusable()) {
                idle.addFirst(p);
                return;
            }
            live--;
        }
        p.close();
    }

    /** Pinned bytes held now, idle or in use. */
    synchronized long pinnedBytes() {
        return (long) live * chunks * chunkBytes;
    }

    /** Frees the idle pipes; pipes in use are freed as they come back. Idempotent. */
    @Override
    public void close() {
        ArrayDeque<DevicePipe> free;
        synchronized (this) {
            closed = true;
            free = new ArrayDeque<>(idle);
            live -= idle.size();
            idle.clear();
        }
        for (DevicePipe p : free) {
            p.close();
        }
    }
}
