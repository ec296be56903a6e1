package io.mooncake4j.djl.connector;

import io.mooncake4j.Opcode;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.djl.kv.BlockAllocator;
import io.mooncake4j.djl.kv.BlockRun;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.KvPart;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.function.Consumer;
import java.util.function.Predicate;

/** Transfer batches between this pool's blocks and a peer's, as both sides' parameters describe them. */
final class BlockTransfers {
    private final TransferEngine engine;
    private final PagedKvPool pool;
    private final KvLayout layout;
    private final BlockAllocator allocator;
    private final ConnectorCounters counters;
    private final Executor io;

    /**
     * What a batch moved, once it ended.
     *
     * @param batch the ended batch (its statuses say whether every request completed)
     * @param blocks local blocks it covered
     * @param runs runs of blocks contiguous on both sides
     * @param bytes bytes it was to move
     * @param transferNanos from submit to its end
     */
    record Moved(TransferBatch batch, int blocks, int runs, long bytes, long transferNanos) {}

    BlockTransfers(PagedKvPool pool, ConnectorCounters counters, Executor io) {
        this.engine = pool.engine();
        this.pool = pool;
        this.layout = pool.layout();
        this.allocator = pool.allocator();
        this.counters = counters;
        this.io = io;
    }

    /**
     * Moves {@code runs} between the {@code local} blocks and the peer's in one batch, the local
     * blocks pinned from before submit until the batch ends. {@code attach} sees the batch before
     * it is submitted and may refuse it (nothing is submitted then, and this returns false); {@code
     * onEnd} runs on an I/O thread once the batch ended and the pins are released.
     */
    boolean start(Opcode op, KvTransferParams peer, int[] local, List<BlockRun> runs,
            Predicate<TransferBatch> attach, Consumer<Moved> onEnd) {
        TransferBatch b = batch(op, peer, runs);
        long bytes = bytes(runs);
        allocator.retain(local);
        long t0;
        try {
            if (!attach.test(b)) {
                allocator.release(local);
                return false;
            }
            t0 = System.nanoTime();
            b.submit();
        } catch (RuntimeException e) {
            allocator.release(local);
            throw e;
        }
        counters.transferRequests.addAndGet(b.size());
        b.completion().whenCompleteAsync((done, ex) -> {
            long transfer = System.nanoTime() - t0;
            allocator.release(local);
            onEnd.accept(new Moved(b, local.length, runs.size(), bytes, transfer));
        }, io);
        return true;
    }

    /** The address of each layer's {@code part} region in this pool, as published in parameters. */
    long[] bases(KvPart part) {
        long[] b = new long[layout.layers()];
        for (int l = 0; l < b.length; l++) {
            b[l] = pool.partAddress(l, part);
        }
        return b;
    }

    /**
     * One request per (layer, K/V, run of blocks): the local run starting at {@code run.src()} and
     * the peer's starting at {@code run.dst()}, so runs contiguous on both sides move in one request.
     */
    private TransferBatch batch(Opcode op, KvTransferParams peer, List<BlockRun> runs) {
        Segment seg = engine.openSegment(peer.engine());
        TransferBatch b = engine.newBatch(layout.layers() * 2 * runs.size());
        long bb = layout.blockBytes();
        for (int l = 0; l < layout.layers(); l++) {
            for (KvPart part : KvPart.values()) {
                for (BlockRun run : runs) {
                    b.add(op, seg, pool.blockAddress(l, part, run.src()), peer.base(l, part) + run.dst() * bb,
                            run.count() * bb);
                }
            }
        }
        return b;
    }

    /** The bytes {@link #batch} moves for these runs. */
    private long bytes(List<BlockRun> runs) {
        long blocks = 0;
        for (BlockRun run : runs) {
            blocks += run.count();
        }
        return blocks * layout.blockBytes() * layout.layers() * 2;
    }

    /** Why a batch did not complete: its first request that did not, and its reason. */
    static String failure(TransferBatch b) {
        for (int i = 0; i < b.size(); i++) {
            TransferStatus st = b.status(i);
            if (st != TransferStatus.COMPLETED) {
                String reason = b.failureReason(i);
                return "request " + i + " of " + b.size() + " ended " + st + (reason == null ? "" : ": " + reason);
            }
        }
        return "unknown";
    }
}
