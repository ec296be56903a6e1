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
    /**
     * Null when requests with local GPU memory are staged to this peer; otherwise why they end INVALID
     * (no device provider here, or a v1 peer). Lanes skip such requests in their plans.
     */
    final String gpuRefusal;
    private final AtomicInteger nextStart = new AtomicInteger();

    TcpPeer(TcpTransport transport, String label, InetSocketAddress address, boolean v2, int lanes, String gpuRefusal) {
        this.label = label;
        this.gpuRefusal = gpuRefusal;
        this.address = address;
        this.v2 = v2;
        this.lanes = new TcpLane[lanes];
        for (int i = 0; i < lanes; i++) {
            this.lanes[i] = new TcpLane(transport, this, i);
        }
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
