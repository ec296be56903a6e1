package io.mooncake4j.transport.efa;

import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.spi.Submission;

/**
 * One submission on its way through a progress thread: a cursor over its requests that cuts them
 * into RMA operations. Requests contiguous on both sides (same opcode, same local registration and
 * remote buffer) are merged into one operation up to the slice size; larger requests are split into
 * slice-sized parts. The cursor belongs to the progress thread; {@link #abort()} may come from any.
 */
final class EfaWork {
    final Submission work;
    final EfaPeer peer;
    /** Next request to issue, and the bytes of it already issued (a split request). */
    int next;
    long offset;
    /** The last batch posting round that marked one of its writes delivery-complete ({@link EfaProgress}). */
    int postMark;
    /** Per local NIC, its writes' delivery bookkeeping, made on first use. */
    private EfaDelivery[] delivery;

    EfaWork(Submission work, EfaPeer peer) {
        this.work = work;
        this.peer = peer;
    }

    /** The delivery bookkeeping of local NIC {@code nic}, or null when it has none yet. */
    EfaDelivery existingDelivery(int nic) {
        return delivery == null ? null : delivery[nic];
    }

    EfaDelivery delivery(int nic) {
        if (delivery == null) {
            delivery = new EfaDelivery[peer.dest.length];
        }
        if (delivery[nic] == null) {
            delivery[nic] = new EfaDelivery();
        }
        return delivery[nic];
    }

    EfaRegistration local(int i) {
        return (EfaRegistration) work.localRegistration(i);
    }

    BufferDescriptor remote(int i) {
        return work.remoteBuffer(i);
    }

    /**
     * Skips requests that ended before being issued (refused at submit, timed out, cancelled),
     * reporting them: a request the engine ended still holds its pin until its part is reported,
     * which is a no-op for one already reported (refused at submit). A split request that ended
     * part-way has its remaining parts reported instead of started.
     */
    boolean hasNext(long slice) {
        while (next < work.size() && work.isDone(next)) {
            if (offset > 0) {
                long left = work.length(next) - offset;
                for (long parts = (left + slice - 1) / slice; parts > 0; parts--) {
                    work.partFailed(next, TransferStatus.CANCELED, "ended before this part was sent");
                }
                offset = 0;
            } else {
                work.fail(next, TransferStatus.CANCELED, "ended before it was sent");
            }
            next++;
        }
        return next < work.size();
    }

    /** Whether request {@code j} can join an operation that ends where request {@code j - 1} ends. */
    boolean canMerge(int j, long sizeSoFar, long slice) {
        int p = j - 1;
        return !work.isDone(j)
                && work.opcode(j) == work.opcode(p)
                && sizeSoFar + work.length(j) <= slice
                && work.localAddress(j) == work.localAddress(p) + work.length(p)
                && work.remoteAddress(j) == work.remoteAddress(p) + work.length(p)
                && work.localRegistration(j) == work.localRegistration(p)
                && work.remoteBuffer(j) == work.remoteBuffer(p);
    }

    boolean isRead(int i) {
        return work.opcode(i) == Opcode.READ;
    }

    /** The status of parts dropped because the engine gave up: TIMEOUT after the deadline, else CANCELED. */
    TransferStatus abortStatus() {
        return System.nanoTime() - work.deadlineNanos() >= 0 ? TransferStatus.TIMEOUT : TransferStatus.CANCELED;
    }

    /**
     * Reports every part not yet issued with {@code status}, so that the engine hears of each part
     * exactly once.
     */
    void dropUnissued(long slice, TransferStatus status, String reason) {
        if (offset > 0) {
            long left = work.length(next) - offset;
            for (long parts = (left + slice - 1) / slice; parts > 0; parts--) {
                work.partFailed(next, status, reason);
            }
            next++;
            offset = 0;
        }
        for (; next < work.size(); next++) {
            work.partFailed(next, status, reason);
        }
    }
}
