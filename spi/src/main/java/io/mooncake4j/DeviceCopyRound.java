package io.mooncake4j;

import io.mooncake4j.internal.Devices;
import io.mooncake4j.internal.ReleaseLedger;
import io.mooncake4j.spi.DeviceCopier;
import io.mooncake4j.spi.PinnedRegion;
import java.util.concurrent.CompletableFuture;

/**
 * The requests of one submitted round that the engine copies itself with GPU memory on either side
 * (to its own segment, or to a peer's GPU buffer mapped here through CUDA IPC), gathered
 * while the engine walks the round and handed to the device's copier in one {@link
 * DeviceCopier#copy} (one per device when a round spans several). Each request keeps both its pins
 * until the copy is done, then ends COMPLETED, or FAILED with the copier's reason. That runs on the
 * copier's thread and only ends requests: the batch's {@link TransferBatch#completion()} future is
 * completed on the engine's completion threads, as for any transport.
 */
final class DeviceCopyRound {
    private final TransferBatch batch;
    private final ReleaseLedger ledger;
    private final int epoch;
    private final int[] index;
    private final long[] dst;
    private final long[] src;
    private final long[] len;
    private final MemoryLocation[] device;
    private final PinnedRegion[] targets;
    private int size;

    DeviceCopyRound(TransferBatch batch, int epoch) {
        int capacity = batch.size();
        this.batch = batch;
        this.ledger = batch.ledger();
        this.epoch = epoch;
        this.index = new int[capacity];
        this.dst = new long[capacity];
        this.src = new long[capacity];
        this.len = new long[capacity];
        this.device = new MemoryLocation[capacity];
        this.targets = new PinnedRegion[capacity];
    }

    /**
     * Adds request {@code i}, whose local memory is pinned in the batch's ledger and whose target is
     * at {@code remote} in this process (its own memory, or a peer's mapped here), pinned by {@code
     * target}; one side of it is on {@code gpu}, whose copier does it.
     */
    void add(int i, long remote, PinnedRegion target, MemoryLocation gpu) {
        int k = size++;
        index[k] = i;
        if (batch.opcode(i) == Opcode.WRITE) {
            dst[k] = remote;
            src[k] = batch.local(i);
        } else {
            dst[k] = batch.local(i);
            src[k] = remote;
        }
        len[k] = batch.length(i);
        device[k] = gpu;
        targets[k] = target;
    }

    /** Hands the requests to the copiers: one copy per device. */
    void start(Devices devices) {
        int from = 0;
        while (from < size) {
            MemoryLocation gpu = device[from];
            int n = gather(from, gpu);
            int first = from;
            CompletableFuture<Void> done;
            try {
                done = devices.copier(gpu).copy(
                        slice(dst, first, n), slice(src, first, n), slice(len, first, n), n);
            } catch (RuntimeException e) {
                done = CompletableFuture.failedFuture(e);
            }
            done.whenComplete((ok, failure) -> finish(first, n, failure));
            from += n;
        }
    }

    /** Moves the requests on {@code gpu} from {@code from} on together; returns how many there are. */
    private int gather(int from, MemoryLocation gpu) {
        int n = 0;
        for (int k = from; k < size; k++) {
            if (device[k].equals(gpu)) {
                swap(from + n, k);
                n++;
            }
        }
        return n;
    }

    private void swap(int a, int b) {
        if (a == b) {
            return;
        }
        int i = index[a]; index[a] = index[b]; index[b] = i;
        long d = dst[a]; dst[a] = dst[b]; dst[b] = d;
        long s = src[a]; src[a] = src[b]; src[b] = s;
        long l = len[a]; len[a] = len[b]; len[b] = l;
        MemoryLocation g = device[a]; device[a] = device[b]; device[b] = g;
        PinnedRegion t = targets[a]; targets[a] = targets[b]; targets[b] = t;
    }

    private static long[] slice(long[] a, int from, int n) {
        if (from == 0) {
            return a; // the common case: one device, the arrays as they are
        }
        long[] s = new long[n];
        System.arraycopy(a, from, s, 0, n);
        return s;
    }

    private void finish(int from, int n, Throwable failure) {
        String reason = failure == null ? null : "device copy failed: " + rootMessage(failure);
        TransferStatus status = failure == null ? TransferStatus.COMPLETED : TransferStatus.FAILED;
        for (int k = from; k < from + n; k++) {
            targets[k].unpin();
            batch.partEnded(ledger, index[k], status, reason, epoch);
        }
    }

    private static String rootMessage(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null && (c instanceof java.util.concurrent.CompletionException
                || c instanceof java.util.concurrent.ExecutionException)) {
            c = c.getCause();
        }
        return String.valueOf(c.getMessage());
    }
}
