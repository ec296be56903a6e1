package io.mooncake4j.samples.bench;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Opcode;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.Sizes;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * {@code --verify}: WRITE a pattern ({@link VerifyPattern}, new per run) into the target's blocks,
 * READ the blocks back into a separate local area, and compare every byte. It uses the blocks the
 * timed loop uses ({@link BlockLayout}; each distinct block once, at most {@code maxBytes} of them),
 * the same threads and batch size, and only the transfer protocol, so it works against any target,
 * Mooncake's included. Every WRITE ends before the first READ starts, so a write that lands in
 * another thread's block is caught too. The local side is host memory, or with {@code --use_vram}
 * device memory ({@link VerifyArea}: the pattern is staged into it, and read back out of it,
 * through the engine's device copier).
 */
public final class VerifyPhase {
    /** Default cap on the bytes verified: 256 MiB written and read back. */
    public static final long DEFAULT_MAX_BYTES = 256L << 20;

    private final TransferEngine engine;
    private final Segment segment;
    private final BlockLayout layout;
    private final VerifyPattern pattern;
    private final MemoryLocation local;

    /**
     * @param local where the written and read-back areas are allocated: {@code cpu:0}, or the
     *     {@code cuda:N} of the bench's {@code --use_vram} buffers
     */
    public VerifyPhase(TransferEngine engine, Segment segment, BlockLayout layout, VerifyPattern pattern,
            MemoryLocation local) {
        this.engine = engine;
        this.segment = segment;
        this.layout = layout;
        this.pattern = pattern;
        this.local = local;
    }

    /** A verified block: where it is on the target, and its pattern id. */
    record Block(int buffer, long index, int thread) {
        long patternId() {
            return ((long) buffer << 40) | index;
        }
    }

    /** The first byte that came back wrong. */
    public record Mismatch(int block, int remoteBuffer, long remoteBlock, long remoteAddress, long offset,
            byte expected, byte actual, int blocksDiffering) {
        @Override
        public String toString() {
            return String.format("block %d (remote buffer %d, block %d at 0x%x) differs at byte offset %d:"
                    + " wrote 0x%02x, read back 0x%02x; %d block(s) differ",
                    block, remoteBuffer, remoteBlock, remoteAddress, offset, expected & 0xff, actual & 0xff,
                    blocksDiffering);
        }
    }

    /** The outcome: blocks and bytes checked, and the first mismatch or null. */
    public record Result(int blocks, long bytes, long seed, Mismatch mismatch) {
        public boolean ok() {
            return mismatch == null;
        }
    }

    /** The distinct remote blocks the layout's slots touch, in slot order, at most {@code maxBlocks}. */
    static List<Block> blocks(BlockLayout layout, long maxBlocks) {
        List<Block> out = new ArrayList<>();
        Set<Long> seen = new HashSet<>();
        for (int i = 0; i < layout.batchSize() && out.size() < maxBlocks; i++) {
            for (int t = 0; t < layout.threads() && out.size() < maxBlocks; t++) {
                Block b = new Block(layout.remoteBuffer(t), layout.block(t, i), t);
                if (seen.add(b.patternId())) {
                    out.add(b);
                }
            }
        }
        return out;
    }

    /**
     * Writes, reads back and compares.
     *
     * @throws CommandFailure when a request does not complete
     */
    public Result run(long maxBytes) {
        return run(maxBytes, () -> {});
    }

    /** {@link #run(long)} with {@code betweenPhases} run after every WRITE ended and before any READ (tests). */
    Result run(long maxBytes, Runnable betweenPhases) {
        long blockSize = layout.blockSize();
        if (blockSize > Integer.MAX_VALUE) {
            throw new CommandFailure("--verify handles blocks up to 2 GiB - 1, not " + blockSize);
        }
        List<Block> blocks = blocks(layout, Math.max(1, maxBytes / blockSize));
        int n = blocks.size();
        int workers = Math.min(layout.threads(), n);
        try (VerifyArea source = VerifyArea.allocate(engine, n * blockSize, local);
                VerifyArea back = VerifyArea.allocate(engine, n * blockSize, local)) {
            ExecutorService pool = Executors.newFixedThreadPool(workers, r -> {
                Thread t = new Thread(r, "bench-verify");
                t.setDaemon(true);
                return t;
            });
            try {
                // Phase 1: fill and WRITE; phase 2 starts when every WRITE has ended.
                runAll(pool, workers, w -> {
                    for (int k = w; k < n; k += workers) {
                        pattern.fill(source.buffer(k * blockSize, (int) blockSize), blocks.get(k).patternId());
                    }
                    return null;
                });
                source.toDevice();
                runAll(pool, workers, w -> {
                    transfer(Opcode.WRITE, source, blocks, w, workers);
                    return null;
                });
                betweenPhases.run();
                runAll(pool, workers, w -> {
                    transfer(Opcode.READ, back, blocks, w, workers);
                    return null;
                });
                back.fromDevice();
                List<Future<long[]>> checks = new ArrayList<>();
                for (int w = 0; w < workers; w++) {
                    int first = w;
                    checks.add(pool.submit(() -> compare(back, blocks, first, workers)));
                }
                long firstBlock = -1;
                long firstOffset = -1;
                int differing = 0;
                for (Future<long[]> f : checks) {
                    long[] r = get(f);
                    differing += (int) r[2];
                    if (r[0] >= 0 && (firstBlock < 0 || r[0] < firstBlock)) {
                        firstBlock = r[0];
                        firstOffset = r[1];
                    }
                }
                Mismatch m = null;
                if (firstBlock >= 0) {
                    Block b = blocks.get((int) firstBlock);
                    byte actual = back.buffer(firstBlock * blockSize + firstOffset, 1).get(0);
                    m = new Mismatch((int) firstBlock, b.buffer(), b.index(),
                            layout.remoteAddressOf(b.buffer(), b.index()), firstOffset,
                            pattern.byteAt(b.patternId(), firstOffset), actual, differing);
                }
                return new Result(n, n * blockSize, pattern.seed(), m);
            } finally {
                pool.shutdownNow();
            }
        }
    }

    private interface Task {
        Void run(int worker) throws Exception;
    }

    private static void runAll(ExecutorService pool, int workers, Task task) {
        List<Future<Void>> fs = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            int worker = w;
            fs.add(pool.submit(() -> task.run(worker)));
        }
        for (Future<Void> f : fs) {
            get(f);
        }
    }

    private static <T> T get(Future<T> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CommandFailure("verify interrupted", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException re) {
                throw re;
            }
            throw new CommandFailure("verify failed: " + c, c);
        }
    }

    /** Moves this worker's blocks (k = worker, worker + workers, ...) in batches of batch_size. */
    private void transfer(Opcode op, VerifyArea area, List<Block> blocks, int worker, int workers) {
        long blockSize = layout.blockSize();
        int batchSize = layout.batchSize();
        List<Integer> mine = new ArrayList<>();
        for (int k = worker; k < blocks.size(); k += workers) {
            mine.add(k);
        }
        for (int from = 0; from < mine.size(); from += batchSize) {
            int count = Math.min(batchSize, mine.size() - from);
            TransferBatch batch = engine.newBatch(count);
            for (int j = 0; j < count; j++) {
                int k = mine.get(from + j);
                Block b = blocks.get(k);
                batch.add(op, segment, area.address() + k * blockSize,
                        layout.remoteAddressOf(b.buffer(), b.index()), blockSize);
            }
            batch.submit().join();
            for (int j = 0; j < count; j++) {
                TransferStatus st = batch.status(j);
                if (st != TransferStatus.COMPLETED) {
                    Block b = blocks.get(mine.get(from + j));
                    throw new CommandFailure("verify: " + ThroughputLoop.describeFailure(op, segment, worker, j,
                            count, blockSize, layout.remoteAddressOf(b.buffer(), b.index()), st,
                            batch.failureReason(j)));
                }
            }
        }
    }

    /** {first differing block or -1, its first differing offset, blocks differing} for one worker. */
    private long[] compare(VerifyArea back, List<Block> blocks, int worker, int workers) {
        long blockSize = layout.blockSize();
        long first = -1;
        long offset = -1;
        long differing = 0;
        for (int k = worker; k < blocks.size(); k += workers) {
            long o = pattern.firstMismatch(back.buffer(k * blockSize, (int) blockSize), blocks.get(k).patternId());
            if (o >= 0) {
                differing++;
                if (first < 0) {
                    first = k;
                    offset = o;
                }
            }
        }
        return new long[] {first, offset, differing};
    }

    /** One line for a passed verification. */
    public static String okLine(Result r) {
        return "Verify: OK, " + r.blocks() + " blocks (" + Sizes.format(r.bytes()) + ") written, read back and"
                + " compared byte for byte, seed 0x" + Long.toHexString(r.seed());
    }
}
