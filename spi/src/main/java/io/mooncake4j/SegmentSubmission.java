package io.mooncake4j;

import io.mooncake4j.spi.Submission;

/**
 * The requests of one round of a batch bound for one segment, as a transport sees them. One object
 * per round and segment: a transport that still holds it after the round ended (its parts were
 * cancelled, the batch was reset) gets {@link #isDone} true for every request, and its reports are
 * ignored (every call carries the round's epoch). When every request of the batch goes to one
 * segment, the indexes are the batch's own and no index array is kept.
 */
final class SegmentSubmission implements Submission {
    private final TransferBatch batch;
    private final int[] index; // null: request i is the batch's request i
    private final int size;
    private final int epoch;
    private final long deadlineNanos;

    SegmentSubmission(TransferBatch batch, int[] index, int size, int epoch, long deadlineNanos) {
        this.batch = batch;
        this.index = index;
        this.size = size;
        this.epoch = epoch;
        this.deadlineNanos = deadlineNanos;
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
        var pin = batch.pinOf(at(i));
        return pin != null && pin.region().location().isCuda();
    }

    @Override
    public long deadlineNanos() {
        return deadlineNanos;
    }

    @Override
    public void expectParts(int i, int parts) {
        batch.expectParts(at(i), parts, epoch);
    }

    @Override
    public void partDone(int i, TransferStatus status) {
        batch.partEnded(at(i), status, null, epoch);
    }

    @Override
    public void partFailed(int i, TransferStatus status, String reason) {
        batch.partEnded(at(i), status, reason, epoch);
    }

    @Override
    public void fail(int i, TransferStatus status, String reason) {
        batch.finish(at(i), status, reason, epoch);
    }

    @Override
    public boolean isDone(int i) {
        return batch.isDone(at(i), epoch);
    }

    TransferBatch batch() {
        return batch;
    }

    int epoch() {
        return epoch;
    }
}
