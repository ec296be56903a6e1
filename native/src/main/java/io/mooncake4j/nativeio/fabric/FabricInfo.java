package io.mooncake4j.nativeio.fabric;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * One NIC (domain) that {@code fi_getinfo} offered for an RDM endpoint with RMA, with the attributes
 * the transport needs. Valid while the {@link Query} that produced it is open.
 */
public final class FabricInfo {
    final long handle;
    private final String provider;
    private final String domain;
    private final String fabric;
    private final long mrMode;
    private final long txSize;
    private final long maxMessageSize;
    private final long caps;
    private final long orderedWriteSize;

    private FabricInfo(long handle) {
        this.handle = handle;
        this.provider = FabricNatives.infoString0(handle, 0);
        this.domain = FabricNatives.infoString0(handle, 1);
        this.fabric = FabricNatives.infoString0(handle, 2);
        this.mrMode = FabricNatives.infoLong0(handle, 0);
        this.txSize = FabricNatives.infoLong0(handle, 1);
        long max = FabricNatives.infoLong0(handle, 2);
        this.maxMessageSize = max <= 0 ? Long.MAX_VALUE : max; // an unsigned SIZE_MAX means no limit
        this.caps = FabricNatives.infoLong0(handle, 3);
        boolean waw = (FabricNatives.infoLong0(handle, 5) & LibFabric.FI_ORDER_WAW) != 0;
        long wawSize = FabricNatives.infoLong0(handle, 6);
        this.orderedWriteSize = !waw ? 0 : wawSize < 0 ? Long.MAX_VALUE : wawSize; // SIZE_MAX: no limit
    }

    /**
     * Up to which size RMA writes to one peer are placed in its memory in the order they were posted
     * ({@code FI_ORDER_WAW} in the transmit {@code msg_order}, and {@code max_order_waw_size}); 0 when
     * they are not ordered (shm, EFA).
     */
    public long orderedWriteSize() {
        return orderedWriteSize;
    }

    /** Whether the provider registers device memory ({@code FI_HMEM} in its capabilities). */
    public boolean supportsHmem() {
        return (caps & LibFabric.FI_HMEM) != 0;
    }

    /** The provider, e.g. {@code efa}, {@code tcp;ofi_rxm}, {@code shm}. */
    public String provider() {
        return provider;
    }

    /** The domain (NIC) name, e.g. {@code rdmap16s27-rdm} or {@code lo}. */
    public String domain() {
        return domain;
    }

    /** The fabric name. */
    public String fabric() {
        return fabric;
    }

    /** The {@code mr_mode} bits the provider requires. */
    public long mrMode() {
        return mrMode;
    }

    /** The transmit queue depth. */
    public long txSize() {
        return txSize;
    }

    /** The largest single message (RMA operation) in bytes. */
    public long maxMessageSize() {
        return maxMessageSize;
    }

    @Override
    public String toString() {
        return provider + "/" + domain + "[mr_mode=0x" + Long.toHexString(mrMode) + ", tx=" + txSize + "]";
    }

    /** The result of one {@code fi_getinfo}; close it after opening the NICs it lists. */
    public static final class Query implements AutoCloseable {
        private long head;
        private final List<FabricInfo> infos;

        private Query(long head) {
            this.head = head;
            List<FabricInfo> list = new ArrayList<>();
            for (long p = head; p != 0; p = FabricNatives.infoNext0(p)) {
                list.add(new FabricInfo(p));
            }
            this.infos = Collections.unmodifiableList(list);
        }

        /**
         * Asks for RDM endpoints with RMA from {@code provider} (e.g. {@code efa}, {@code
         * tcp;ofi_rxm}), FI_AV_TABLE, FI_THREAD_SAFE and the {@code mr_mode} bits this caller can
         * honour.
         *
         * @param node a local address to pin the NICs to (socket providers: {@code 127.0.0.1}), or
         *     null
         * @throws FabricException naming libfabric's error (e.g. no data available: no such NIC)
         */
        public static Query run(String provider, String node, long mrModeHints) {
            return run(provider, node, mrModeHints, 0);
        }

        /**
         * As {@link #run(String, String, long)}, asking also for {@code extraCaps} (e.g. {@link
         * LibFabric#FI_HMEM}, with {@link LibFabric#FI_MR_HMEM} among the {@code mr_mode} hints).
         *
         * @throws FabricException when no NIC offers them all (no data available)
         */
        public static Query run(String provider, String node, long mrModeHints, long extraCaps) {
            LibFabric.ensureAvailable();
            long head = FabricException.check("fi_getinfo(" + provider + ")",
                    FabricNatives.getinfo0(provider, node, mrModeHints, extraCaps));
            return new Query(head);
        }

        /** What was found, in libfabric's order. */
        public List<FabricInfo> infos() {
            return infos;
        }

        @Override
        public synchronized void close() {
            if (head != 0) {
                FabricNatives.freeinfo0(head);
                head = 0;
            }
        }
    }
}
