package io.mooncake4j;

import io.mooncake4j.spi.Submission;

/** The requests of one batch bound for one segment, as a transport sees them. */
final class SegmentSubmission implements Submission {
    private final TransferBatch batch;
    private final int[] index;
    private final int size;

    SegmentSubmission(TransferBatch batch, int[] index, int size) {
        this.batch = batch;
        this.index = index;
        this.size = size;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public Opcode opcode(int i) {
        return batch.opcode(index[i]);
    }

    @Override
    public long localAddress(int i) {
        return batch.local(index[i]);
    }

    @Override
    public long remoteAddress(int i) {
        return batch.remote(index[i]);
    }

    @Override
    public long length(int i) {
        return batch.length(index[i]);
    }

    @Override
    public boolean localIsCuda(int i) {
        var pin = batch.pinOf(index[i]);
        return pin != null && pin.region().location().isCuda();
    }

    @Override
    public long deadlineNanos() {
        return batch.deadlineNanos();
    }

    @Override
    public void expectParts(int i, int parts) {
        batch.expectParts(index[i], parts);
    }

    @Override
    public void partDone(int i, TransferStatus status) {
        batch.partEnded(index[i], status, null);
    }

    @Override
    public void partFailed(int i, TransferStatus status, String reason) {
        batch.partEnded(index[i], status, reason);
    }

    @Override
    public void fail(int i, TransferStatus status, String reason) {
        batch.finish(index[i], status, reason);
    }

    @Override
    public boolean isDone(int i) {
        return batch.isDone(index[i]);
    }

    TransferBatch batch() {
        return batch;
    }
}
