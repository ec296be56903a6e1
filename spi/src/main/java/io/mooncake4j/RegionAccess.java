package io.mooncake4j;

/**
 * Who may reach a registered region ({@link TransferEngine#registerMemory(long, long, MemoryLocation,
 * RegionAccess)}).
 */
public enum RegionAccess {
    /**
     * Published in the segment descriptor; peers may read and write it. Mooncake's only kind, and
     * the default.
     */
    REMOTE,
    /**
     * Never published and never served to a peer: a peer's read or write into it is refused (TCP
     * status 1) with no byte read or written. It is still the local side of this engine's own
     * transfers (the source of a WRITE, the destination of a READ) and a target of transfers to
     * this engine's own segment. For staging buffers and anything a peer has no business with.
     */
    LOCAL_ONLY
}
