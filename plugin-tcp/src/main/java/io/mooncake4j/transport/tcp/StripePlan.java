package io.mooncake4j.transport.tcp;

import io.mooncake4j.spi.Submission;

/**
 * The deterministic assignment of a submission's parts to the lanes of a peer. Every lane walks the
 * same plan and takes only its own parts, so a batch is handed to a lane as just (submission, start
 * lane): nothing is stored per request.
 *
 * <ul>
 *   <li>A request longer than the slice size is cut into {@code ceil(length / slice)} parts of
 *       nearly equal size; part {@code p} goes to lane {@code (cursor + p) % lanes} and the cursor
 *       moves on by the number of parts.
 *   <li>Smaller requests go whole to the cursor's lane; the cursor moves on once that lane got about
 *       a slice of them, so a batch of small requests fills a few lanes with long gathering writes
 *       instead of waking every lane for a handful of bytes.
 *   <li>With {@code skipLocalGpu}, requests on local GPU memory are skipped (the transport refused
 *       them before planning: nothing stages GPU memory to this peer).
 * </ul>
 *
 * Reusable and allocation free; confined to one thread.
 */
final class StripePlan {
    private Submission sub;
    private int lanes;
    private long slice;
    private boolean skipLocalGpu;
    private int lane;
    private int size;

    private int next; // next request to look at
    private int cursor;
    private long acc;
    // the multi-part request being walked, if any
    private int partsTotal;
    private int partNext;
    private long partBase;
    private long partRem;

    /** The request of the current part. */
    int request;
    /** Offset of the current part within its request. */
    long offset;
    /** Length of the current part. */
    long length;

    /** Number of parts a request of {@code length} bytes is cut into. */
    static int partsOf(long length, long slice) {
        return length <= slice ? 1 : (int) Math.min(Integer.MAX_VALUE, (length + slice - 1) / slice);
    }

    /** The set of lanes (bit per lane) that get at least one part of {@code s}. */
    static long laneMask(Submission s, int start, int lanes, long slice, boolean skipLocalGpu) {
        long mask = 0;
        int cursor = start;
        long acc = 0;
        long all = lanes == 64 ? -1L : (1L << lanes) - 1;
        for (int i = 0, n = s.size(); i < n && mask != all; i++) {
            if (skipLocalGpu && s.localIsCuda(i)) {
                continue;
            }
            long len = s.length(i);
            int parts = partsOf(len, slice);
            if (parts > 1) {
                for (int p = 0; p < parts && p < lanes; p++) {
                    mask |= 1L << ((cursor + p) % lanes);
                }
                cursor = (int) ((cursor + (long) parts) % lanes);
                acc = 0;
            } else {
                mask |= 1L << cursor;
                acc += len + TcpWire.HEADER_BYTES;
                if (acc >= slice) {
                    cursor = (cursor + 1) % lanes;
                    acc = 0;
                }
            }
        }
        return mask;
    }

    /** Starts walking {@code s} for {@code lane} of {@code lanes}. */
    void reset(Submission s, int start, int lane, int lanes, long slice, boolean skipLocalGpu) {
        this.sub = s;
        this.skipLocalGpu = skipLocalGpu;
        this.lanes = lanes;
        this.slice = slice;
        this.lane = lane;
        this.size = s.size();
        this.next = 0;
        this.cursor = start;
        this.acc = 0;
        this.partsTotal = 0;
        this.partNext = 0;
    }

    /** Takes {@code other}'s walk as it stands, so that this one can look ahead without moving it. */
    void copyFrom(StripePlan other) {
        sub = other.sub;
        lanes = other.lanes;
        slice = other.slice;
        skipLocalGpu = other.skipLocalGpu;
        lane = other.lane;
        size = other.size;
        next = other.next;
        cursor = other.cursor;
        acc = other.acc;
        partsTotal = other.partsTotal;
        partNext = other.partNext;
        partBase = other.partBase;
        partRem = other.partRem;
        request = other.request;
        offset = other.offset;
        length = other.length;
    }

    /** Releases the submission. */
    void clear() {
        sub = null;
    }

    /** Advances to this lane's next part; false when there is none. */
    boolean next() {
        while (true) {
            if (partsTotal > 0) {
                if (partNext < partsTotal) {
                    int p = partNext;
                    partNext += lanes;
                    offset = p * partBase + Math.min(p, partRem);
                    length = partBase + (p < partRem ? 1 : 0);
                    return true;
                }
                partsTotal = 0;
            }
            if (next >= size) {
                return false;
            }
            int i = next++;
            if (skipLocalGpu && sub.localIsCuda(i)) {
                continue;
            }
            long len = sub.length(i);
            int parts = partsOf(len, slice);
            if (parts > 1) {
                int mine = Math.floorMod(lane - cursor, lanes);
                cursor = (int) ((cursor + (long) parts) % lanes);
                acc = 0;
                if (mine < parts) {
                    request = i;
                    partsTotal = parts;
                    partNext = mine;
                    partBase = len / parts;
                    partRem = len % parts;
                }
                continue;
            }
            int owner = cursor;
            acc += len + TcpWire.HEADER_BYTES;
            if (acc >= slice) {
                cursor = (cursor + 1) % lanes;
                acc = 0;
            }
            if (owner == lane) {
                request = i;
                offset = 0;
                length = len;
                return true;
            }
        }
    }
}
