package io.mooncake4j.transport.tcp;

import java.net.InetSocketAddress;
import java.util.concurrent.atomic.AtomicInteger;

/** A peer's data server and the lanes (persistent connections) this engine keeps to it. */
final class TcpPeer {
    final String label;
    final InetSocketAddress address;
    /** Whether the peer speaks protocol v2 (status frames, pipelining). */
    final boolean v2;
    final TcpLane[] lanes;
    private final DeviceStaging staging;
    private final AtomicInteger nextStart = new AtomicInteger();

    TcpPeer(TcpTransport transport, String label, InetSocketAddress address, boolean v2, int lanes) {
        this.label = label;
        this.staging = transport.staging;
        this.address = address;
        this.v2 = v2;
        this.lanes = new TcpLane[lanes];
        for (int i = 0; i < lanes; i++) {
            this.lanes[i] = new TcpLane(transport, this, i);
        }
    }

    /**
     * Null when requests with local GPU memory are staged to this peer; otherwise why they end INVALID
     * (a v1 peer, or no device provider here, found on the first call).
     */
    String gpuRefusal() {
        return v2 ? staging.unavailable() : TcpTransport.V1_GPU_REASON;
    }

    /**
     * Whether plans skip requests with local GPU memory: they were refused. Known once a submission
     * with such a request was checked ({@link #gpuRefusal}), which happens before its lanes plan it;
     * for a submission without one the answer does not matter.
     */
    boolean skipsLocalGpu() {
        return !v2 || staging.knownUnavailable();
    }

    /** The lane a new submission's plan starts on; rotates so that concurrent batches spread out. */
    int nextStart() {
        return Math.floorMod(nextStart.getAndIncrement(), lanes.length);
    }

    @Override
    public String toString() {
        return label;
    }
}
