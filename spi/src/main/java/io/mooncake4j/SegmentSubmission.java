package io.mooncake4j;

import io.mooncake4j.internal.RegisteredRegion;
import io.mooncake4j.internal.ReleaseLedger;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Submission;

/**
 * The requests of one round of a batch bound for one segment, as a transport sees them. One object
 * per round and segment: a transport that still holds it after the round ended (its parts were
 * cancelled, the batch was reset) gets {@link #isDone} true for every request, its reports change no
 * status (every call carries the round's epoch) but still release the round's pins through the
 * round's own {@link ReleaseLedger}. When every request of the batch goes to one segment, the
 * indexes are the batch's own and no index array is kept.
 */
final class SegmentSubmission implements Submission {
    private final TransferBatch batch;
    private final ReleaseLedger ledger;
    private final int[] index; // null: request i is the batch's request i
    private final int size;
    private final int epoch;
    private final long deadlineNanos;
    private final int transport; // the index of the installed transport it goes to
    private volatile boolean aborted;

    SegmentSubmission(TransferBatch batch, int[] index, int size, int epoch, long deadlineNanos, int transport) {
        this.batch = batch;
        this.ledger = batch.ledger();
        this.index = index;
        this.size = size;
        this.epoch = epoch;
        this.deadlineNanos = deadlineNanos;
        this.transport = transport;
    }

    private int at(int i) {
        if (i < 0 || i >= size) {
            throw new IndexOutOfBoundsException("request " + i + " of a submission of " + size);
        }
        return index == null ? i : index[i];
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public Opcode opcode(int i) {
        return batch.opcode(at(i));
    }

    @Override
    public long localAddress(int i) {
        return batch.local(at(i));
    }

    @Override
    public long remoteAddress(int i) {
        return batch.remote(at(i));
    }

    @Override
    public long length(int i) {
        return batch.length(at(i));
    }

    @Override
    public boolean localIsCuda(int i) {
        RegisteredRegion r = ledger.region(at(i));
        return r != null && r.region().location().isCuda();
    }

    @Override
    public RegionRegistration localRegistration(int i) {
        RegisteredRegion r = ledger.region(at(i));
        return r == null ? RegionRegistration.NONE : r.registration(transport);
    }

    @Override
    public BufferDescriptor remoteBuffer(int i) {
        return batch.remoteBuffer(at(i));
    }

    @Override
    public long deadlineNanos() {
        return deadlineNanos;
    }

    @Override
    public boolean isAborted() {
        return aborted;
    }

    @Override
    public void expectParts(int i, int parts) {
        ledger.expect(at(i), parts, epoch);
    }

    @Override
    public void partDone(int i, TransferStatus status) {
        batch.partEnded(ledger, at(i), status, null, epoch);
    }

    @Override
    public void partFailed(int i, TransferStatus status, String reason) {
        batch.partEnded(ledger, at(i), status, reason, epoch);
    }

    @Override
    public void fail(int i, TransferStatus status, String reason) {
        batch.fail(ledger, at(i), status, reason, epoch);
    }

    @Override
    public boolean isDone(int i) {
        return batch.isDone(at(i), epoch);
    }

    /** The engine gave up on the submission: set before the transport's abort is called. */
    void markAborted() {
        aborted = true;
    }

    int transport() {
        return transport;
    }

    TransferBatch batch() {
        return batch;
    }

    int epoch() {
        return epoch;
    }
}
