package io.mooncake4j.internal;

import io.mooncake4j.MemoryRegion;
import io.mooncake4j.spi.DeviceIpcMapping;
import io.mooncake4j.spi.PinnedRegion;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A peer's device buffer mapped into this process, shared by the requests that copy through it:
 * each holds a pin ({@link #tryPin()}, {@link #unpin()}); the cache holds one more until it retires
 * the mapping. The last release unmaps it, so a mapping is never closed under a copy.
 */
public final class IpcMapping implements PinnedRegion {
    private static final Logger LOG = LoggerFactory.getLogger(IpcMapping.class);
    private final DeviceIpcMapping mapping;
    private final long peerAddress;
    private final MemoryRegion region;
    private final Consumer<IpcMapping> onClose;
    private final AtomicInteger refs = new AtomicInteger(1); // the cache's reference
    private final AtomicBoolean retired = new AtomicBoolean();

    IpcMapping(DeviceIpcMapping mapping, long peerAddress, Consumer<IpcMapping> onClose) {
        this.mapping = mapping;
        this.peerAddress = peerAddress;
        this.region = new MemoryRegion(mapping.address(), mapping.length(), mapping.location());
        this.onClose = onClose;
    }

    /** Where the peer's address {@code remote} (inside its published buffer) is in this process. */
    public long localAddress(long remote) {
        return mapping.address() + (remote - peerAddress);
    }

    /** The mapped buffer as this process sees it: address, length and the local device. */
    @Override
    public MemoryRegion region() {
        return region;
    }

    /** Takes a pin for one copy unless the mapping was retired and released. */
    boolean tryPin() {
        while (true) {
            int r = refs.get();
            if (r == 0) {
                return false;
            }
            if (refs.compareAndSet(r, r + 1)) {
                return true;
            }
        }
    }

    /** Releases a pin; the last one unmaps it. Never throws: it runs on a copier's thread or in a submit. */
    @Override
    public void unpin() {
        if (refs.decrementAndGet() == 0) {
            try {
                mapping.close();
            } catch (RuntimeException e) {
                LOG.warn("unmapping {} failed: {}", this, e.toString());
            } finally {
                onClose.accept(this);
            }
        }
    }

    /** Drops the cache's reference (once): unmapped now, or when the last copy through it ends. */
    void retire() {
        if (retired.compareAndSet(false, true)) {
            unpin();
        }
    }

    @Override
    public String toString() {
        return "IpcMapping[peer 0x" + Long.toHexString(peerAddress) + " -> " + region + "]";
    }
}
