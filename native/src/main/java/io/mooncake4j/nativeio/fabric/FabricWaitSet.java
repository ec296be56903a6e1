package io.mooncake4j.nativeio.fabric;

import java.util.List;

/**
 * The completion queues of several NICs to block on while a progress thread is idle: {@code
 * fi_trywait}, then {@code poll()} on their wait file descriptors. Unlike {@code fi_cq_sread} this
 * holds no libfabric lock while blocked, so other threads (other engines in the process) keep
 * progressing. NICs whose provider has no wait object do not take part.
 */
public final class FabricWaitSet {
    private final long[] handles;

    /** The waitable NICs among {@code nics}. */
    public FabricWaitSet(List<FabricNic> nics) {
        this.handles = nics.stream().filter(FabricNic::isWaitable).mapToLong(FabricNic::handle).toArray();
    }

    /** How many NICs take part. */
    public int size() {
        return handles.length;
    }

    /** Whether no NIC can be waited on (the caller must sleep instead). */
    public boolean isEmpty() {
        return handles.length == 0;
    }

    /**
     * Blocks until a queue needs progress, a NIC is {@linkplain FabricNic#signal() signalled}, or
     * {@code timeoutMillis} passes. Call only while the NICs are open.
     *
     * @return a positive number when something is ready, 0 on timeout, or a negative error
     */
    public int await(int timeoutMillis) {
        return FabricNatives.wait0(handles, timeoutMillis);
    }
}
