package io.mooncake4j;

import io.mooncake4j.internal.Devices;
import io.mooncake4j.internal.ReleaseLedger;
import io.mooncake4j.internal.RoundPins;
import io.mooncake4j.spi.DeviceCopier;
import io.mooncake4j.spi.PinnedRegion;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;

/**
 * The requests of one submitted round that the engine copies itself with GPU memory on either side
 * (to its own segment, or to a same-host peer's GPU buffer mapped here through CUDA IPC), gathered
 * while the engine walks the round and handed to the device's copier in one {@link
 * DeviceCopier#copy} (one per device when a round spans several). The round's own regions stay
 * pinned, once per region ({@link RoundPins}), and a peer's mapping once per request, until every
 * copy of the round is done (a request to a peer holds its local pin in the batch's ledger); then its
 * requests end together, COMPLETED or FAILED with the copier's reason, in one update of the batch
 * ({@link TransferBatch#endCopies}). That runs on the copier's thread and only ends requests: the
 * batch's {@link TransferBatch#completion()} future is completed on the engine's completion
 * threads, as for any transport.
 */
final class DeviceCopyRound {
    /**
     * The most requests a round builds its copier arrays in the submitting thread's scratch arrays
     * for: {@link DeviceCopier#copy} reads them before it returns, so the thread's next round may
     * reuse them (no 3 x 8 bytes a request allocated, and written into fresh memory, per round); a
     * larger round allocates its own.
     */
    private static final int SCRATCH_MAX_REQUESTS = 4096;
    private static final ThreadLocal<long[][]> SCRATCH = ThreadLocal.withInitial(() -> new long[3][0]);

    private final TransferBatch batch;
    private final ReleaseLedger ledger;
    private RoundPins pins; // the round's own regions, given at start; null when it has none
    private final int epoch;
    private int[] index; // the batch's index per request; null while request k is the batch's k-th
    private final long[] dst;
    private final long[] src;
    private final long[] len;
    private MemoryLocation first; // the device of the first request
    private MemoryLocation[] device; // the device per request; null while every request is on the first's
    private PinnedRegion[] mappings; // a peer's mapping per request (CUDA IPC); null until the first
    private int size;

    DeviceCopyRound(TransferBatch batch, int epoch) {
        int capacity = batch.size();
        this.batch = batch;
        this.ledger = batch.ledger();
        this.epoch = epoch;
        long[][] arrays = capacity <= SCRATCH_MAX_REQUESTS ? scratch(capacity) : new long[3][capacity];
        this.dst = arrays[0];
        this.src = arrays[1];
        this.len = arrays[2];
    }

    /** This thread's scratch copier arrays, at least {@code capacity} long. */
    private static long[][] scratch(int capacity) {
        long[][] arrays = SCRATCH.get();
        if (arrays[0].length < capacity) {
            arrays = new long[3][Math.min(SCRATCH_MAX_REQUESTS, Math.max(capacity, 2 * arrays[0].length))];
            SCRATCH.set(arrays);
        }
        return arrays;
    }

    /**
     * Adds request {@code i}, both of whose sides are pinned for the round by its {@link RoundPins};
     * one side of it is on {@code gpu}.
     */
    void add(int i, MemoryLocation gpu) {
        add(i, batch.remote(i), gpu);
    }

    /**
     * Adds request {@code i} to a same-host peer, whose remote side is at {@code remote} in this process
     * through {@code mapping} (pinned, and unpinned here when its copy reports); one side is on {@code gpu}.
     */
    void addMapped(int i, long remote, PinnedRegion mapping, MemoryLocation gpu) {
        if (mappings == null) {
            mappings = new PinnedRegion[batch.size()];
        }
        mappings[size] = mapping;
        add(i, remote, gpu);
    }

    private void add(int i, long remote, MemoryLocation gpu) {
        int k = size++;
        if (index != null) {
            index[k] = i;
        } else if (i != k) { // a request of the batch is not in the round: from here on, say which
            index = identity(k);
            index[k] = i;
        }
        if (batch.opcode(i) == Opcode.WRITE) {
            dst[k] = remote;
            src[k] = batch.local(i);
        } else {
            dst[k] = batch.local(i);
            src[k] = remote;
        }
        len[k] = batch.length(i);
        if (k == 0) {
            first = gpu;
        } else if (device != null) {
            device[k] = gpu;
        } else if (gpu != first && !gpu.equals(first)) { // the round spans a second device
            device = new MemoryLocation[batch.size()];
            Arrays.fill(device, 0, k, first);
            device[k] = gpu;
        }
    }

    /**
     * Hands the requests to the copiers, one copy per device; the round's {@code pins} (null when it
     * has no request to its own segment) are theirs until they report.
     */
    void start(Devices devices, RoundPins roundPins) {
        pins = roundPins;
        boolean mixed = device != null;
        if (mixed && index == null) {
            index = identity(size); // sorting moves the requests
        }
        int copies = mixed ? sortByDevice() : 1;
        if (pins != null) {
            pins.releaseAfter(copies);
        }
        if (!mixed) {
            copy(devices, 0, size);
            return;
        }
        for (int from = 0; from < size; ) {
            int n = 1;
            while (from + n < size && device[from + n].equals(device[from])) {
                n++;
            }
            copy(devices, from, n);
            from += n;
        }
    }

    private void copy(Devices devices, int from, int n) {
        CompletableFuture<Void> done;
        try {
            done = devices.copier(device == null ? first : device[from]).copy(slice(dst, from, n), slice(src, from, n), slice(len, from, n), n);
        } catch (RuntimeException e) {
            done = CompletableFuture.failedFuture(e);
        }
        done.whenComplete((ok, failure) -> finish(from, n, failure));
    }

    /** Groups the requests by device; returns how many devices there are. */
    private int sortByDevice() {
        int devices = 0;
        for (int from = 0; from < size; devices++) {
            MemoryLocation gpu = device[from];
            int n = 0;
            for (int k = from; k < size; k++) {
                if (device[k].equals(gpu)) {
                    swap(from + n, k);
                    n++;
                }
            }
            from += n;
        }
        return devices;
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
        if (mappings != null) {
            PinnedRegion m = mappings[a]; mappings[a] = mappings[b]; mappings[b] = m;
        }
    }

    /** An index per request of the batch, the first {@code k} in the batch's order. */
    private int[] identity(int k) {
        int[] in = new int[batch.size()];
        for (int j = 0; j < k; j++) {
            in[j] = j;
        }
        return in;
    }

    private static long[] slice(long[] a, int from, int n) {
        if (from == 0) {
            return a; // the common case: one device, the arrays as they are
        }
        long[] s = new long[n];
        System.arraycopy(a, from, s, 0, n);
        return s;
    }

    /** The copy of requests {@code from} to {@code from + n} reported: the regions first, then the requests. */
    private void finish(int from, int n, Throwable failure) {
        if (pins != null) {
            pins.copyReported();
        }
        if (mappings != null) {
            for (int k = from; k < from + n; k++) {
                if (mappings[k] != null) {
                    mappings[k].unpin();
                }
            }
        }
        if (failure == null) {
            batch.endCopies(ledger, index, from, n, TransferStatus.COMPLETED, null, epoch);
        } else {
            batch.endCopies(ledger, index, from, n, TransferStatus.FAILED, "device copy failed: " + rootMessage(failure), epoch);
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
