package io.mooncake4j.transport.efa;

import io.mooncake4j.TransferStatus;
import java.util.Arrays;

/**
 * When a write may be reported COMPLETED, on a NIC whose provider delivers RMA writes to a peer in
 * the order they were posted (see {@link EfaNic#lastWriteDelivers}): one submission's writes on one
 * NIC, of which only some ask for delivery completion ({@code FI_DELIVERY_COMPLETE}, which costs a
 * round trip per operation on {@code tcp;ofi_rxm}).
 *
 * <p>Why this is enough: the progress thread marks, in every batch it posts to a NIC, the last write
 * of each submission as delivery-complete, so every other write of the submission on that NIC has a
 * later delivery-complete write to the same peer on the same endpoint. The provider places writes
 * in the peer's memory in posting order ({@code FI_ORDER_WAW} in {@code tx_attr->msg_order}, and
 * {@code max_order_waw_size} at least the largest operation), so once that later write is in the
 * peer's memory, the earlier ones are too. An earlier write's own (transmit) completion therefore
 * waits here, and is reported when a later delivery-complete write of the same submission on the
 * same NIC completes; if none of those does (failed, dropped, endpoint reset), it is reported FAILED:
 * nobody knows whether its bytes arrived. Without that ordering (shm, and EFA's SRD, which does not
 * order), every write asks for delivery completion and nothing waits here.
 *
 * <p>Sequence numbers are the NIC's posting order. Owned by the NIC's progress thread.
 */
final class EfaDelivery {
    /** Sequence numbers of delivery-complete writes posted (or staged) and not yet finished. */
    private long[] outstanding = new long[4];
    private int outstandingCount;
    /** The highest sequence number of a delivery-complete write that completed. */
    private long delivered = -1;
    /** Writes whose completion waits for a later delivery-complete write: sequence, slot range, bytes. */
    private long[] waitingSeq = new long[0];
    private int[] waitingFirst = new int[0];
    private int[] waitingLast = new int[0];
    private long[] waitingBytes = new long[0];
    private int waitingCount;

    /** A delivery-complete write with sequence {@code seq} was staged to be posted. */
    void deliveryPosted(long seq) {
        if (outstandingCount == outstanding.length) {
            outstanding = Arrays.copyOf(outstanding, outstandingCount * 2);
        }
        outstanding[outstandingCount++] = seq;
    }

    /**
     * A write that did not ask for delivery completion completed (transmit completion): reports
     * requests {@code [first, last]} now if a later delivery-complete write already completed, keeps
     * them while one may still complete, else reports them FAILED.
     */
    void writeCompleted(EfaWork w, EfaNic nic, long seq, int first, int last, long bytes) {
        if (delivered > seq) {
            report(w, nic, first, last, bytes, TransferStatus.COMPLETED, null);
        } else if (laterOutstanding(seq)) {
            if (waitingCount == waitingSeq.length) {
                int n = Math.max(8, waitingCount * 2);
                waitingSeq = Arrays.copyOf(waitingSeq, n);
                waitingFirst = Arrays.copyOf(waitingFirst, n);
                waitingLast = Arrays.copyOf(waitingLast, n);
                waitingBytes = Arrays.copyOf(waitingBytes, n);
            }
            waitingSeq[waitingCount] = seq;
            waitingFirst[waitingCount] = first;
            waitingLast[waitingCount] = last;
            waitingBytes[waitingCount++] = bytes;
        } else {
            report(w, nic, first, last, bytes, TransferStatus.FAILED, notDelivered(nic));
        }
    }

    /**
     * The delivery-complete write {@code seq} ended (COMPLETED, or not: failed, dropped, endpoint
     * reset): the earlier writes waiting for it are reported COMPLETED, or, when it did not complete
     * and no later one may, FAILED.
     */
    void deliveryEnded(EfaWork w, EfaNic nic, long seq, boolean completed) {
        for (int i = 0; i < outstandingCount; i++) {
            if (outstanding[i] == seq) {
                outstanding[i] = outstanding[--outstandingCount];
                break;
            }
        }
        if (completed) {
            delivered = Math.max(delivered, seq);
        }
        int kept = 0;
        for (int i = 0; i < waitingCount; i++) {
            long s = waitingSeq[i];
            if (delivered > s) {
                report(w, nic, waitingFirst[i], waitingLast[i], waitingBytes[i], TransferStatus.COMPLETED, null);
            } else if (!laterOutstanding(s)) {
                report(w, nic, waitingFirst[i], waitingLast[i], waitingBytes[i], TransferStatus.FAILED, notDelivered(nic));
            } else {
                waitingSeq[kept] = s;
                waitingFirst[kept] = waitingFirst[i];
                waitingLast[kept] = waitingLast[i];
                waitingBytes[kept++] = waitingBytes[i];
            }
        }
        waitingCount = kept;
    }

    /**
     * The NIC's endpoint was reset: writes waiting here went out on the old endpoint, whose
     * connections are gone, so a delivery-complete write posted on the new one proves nothing about
     * them: they are reported FAILED with {@code reason}.
     */
    void endpointReset(EfaWork w, EfaNic nic, String reason) {
        for (int i = 0; i < waitingCount; i++) {
            report(w, nic, waitingFirst[i], waitingLast[i], waitingBytes[i], TransferStatus.FAILED, reason);
        }
        waitingCount = 0;
    }

    private boolean laterOutstanding(long seq) {
        for (int i = 0; i < outstandingCount; i++) {
            if (outstanding[i] > seq) {
                return true;
            }
        }
        return false;
    }

    private static String notDelivered(EfaNic nic) {
        return "EFA " + nic + ": this write was sent, but the later write of its batch that would have confirmed"
                + " its delivery did not complete, so whether its bytes reached the peer is unknown";
    }

    /** Reports one operation's requests (and counts it when it completed). */
    static void report(EfaWork w, EfaNic nic, int first, int last, long bytes, TransferStatus status, String reason) {
        if (status == TransferStatus.COMPLETED) {
            nic.operations.increment();
            nic.bytes.add(bytes);
        }
        for (int r = first; r <= last; r++) {
            if (status == TransferStatus.COMPLETED) {
                w.work.partDone(r, status);
            } else {
                w.work.partFailed(r, status, reason);
            }
        }
    }
}
