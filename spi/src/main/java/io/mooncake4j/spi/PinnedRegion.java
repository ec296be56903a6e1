package io.mooncake4j.spi;

import io.mooncake4j.MemoryRegion;

/** A registered region held against unregistration; release it with {@link #unpin()}. */
public interface PinnedRegion {
    /** The region. */
    MemoryRegion region();

    /** Releases one pin. */
    void unpin();
}
