package io.mooncake4j.spi;

/** The engine's registered local memory as a transport sees it when serving peers. */
public interface LocalMemory {
    /**
     * Pins the registered region that wholly contains {@code [address, address + length)} so that it
     * cannot be unregistered until {@link PinnedRegion#unpin()}; returns null when no single region
     * contains the range (length 0, overflow, unregistered, or spanning two regions). Allocates
     * nothing.
     */
    PinnedRegion pin(long address, long length);
}
