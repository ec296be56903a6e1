package io.mooncake4j.djl.kv;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.llama.KvCache;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One request's {@link KvCache} in a {@link PagedKvPool}: a block table mapping positions to
 * blocks, so the model writes its keys and values straight into registered memory. Block {@code i}
 * of the table holds positions {@code [i * blockTokens, (i + 1) * blockTokens)}.
 *
 * <p>Reads of positions held by blocks consecutive in memory are views (no copy); spans over
 * several runs are concatenated, and FLOAT16 caches are converted to FLOAT32 for the model. In a
 * pool in device memory, which no array can wrap ({@link PagedKvPool#hasHostViews()}), writes and
 * reads copy the positions in and out through {@link PagedKvPool#write}/{@link PagedKvPool#read}
 * instead: the same results, at the cost of a copy per call. Not thread safe, like every {@code
 * KvCache}.
 */
public final class PagedKvCache implements KvCache, AutoCloseable {
    private final PagedKvPool pool;
    private final KvLayout layout;
    private final int[] blocks;
    private final boolean ownsBlocks;
    /** Memory runs of the table: src = first block id, dst = index in the table, count. */
    private final BlockRun[] runs;
    private final NDManager manager;
    private final NDArray[][] views;
    private final AtomicBoolean closed = new AtomicBoolean();

    PagedKvCache(PagedKvPool pool, int[] blocks, boolean ownsBlocks, NDManager parent) {
        this.pool = pool;
        this.layout = pool.layout();
        this.blocks = blocks;
        this.ownsBlocks = ownsBlocks;
        for (int b : blocks) {
            if (b < 0 || b >= layout.numBlocks()) {
                throw new KvException(KvError.INVALID_PARAMS, "block id " + b + " outside the pool's " + layout.numBlocks());
            }
        }
        int max = pool.maxViewBlocks();
        List<BlockRun> split = new ArrayList<>();
        for (BlockRun r : BlockRuns.memoryRuns(blocks)) {
            for (int off = 0; off < r.count(); off += max) {
                split.add(new BlockRun(r.src() + off, r.dst() + off, Math.min(max, r.count() - off)));
            }
        }
        this.runs = split.toArray(new BlockRun[0]);
        this.manager = Objects.requireNonNull(parent, "manager").newSubManager();
        this.views = new NDArray[layout.layers() * 2][runs.length];
    }

    /** The pool the blocks belong to. */
    public PagedKvPool pool() {
        return pool;
    }

    /** A copy of the block table. */
    public int[] blocks() {
        return blocks.clone();
    }

    /** The number of blocks in the table. */
    public int numBlocks() {
        return blocks.length;
    }

    /** Positions per block. */
    public int blockTokens() {
        return layout.blockTokens();
    }

    /** The number of runs of blocks consecutive in memory (1 = fully contiguous). */
    public int memoryRuns() {
        return runs.length;
    }

    @Override
    public int capacity() {
        return blocks.length * layout.blockTokens();
    }

    @Override
    public int layers() {
        return layout.layers();
    }

    @Override
    public int kvDim() {
        return layout.kvDim();
    }

    @Override
    public void write(int layer, int start, NDArray k, NDArray v) {
        ensureOpen();
        Objects.checkIndex(layer, layout.layers());
        Shape shape = k.getShape();
        if (shape.dimension() != 2 || shape.get(1) != layout.kvDim() || !shape.equals(v.getShape())) {
            throw new IllegalArgumentException(
                    "expected K and V of shape [n, " + layout.kvDim() + "], got " + shape + " and " + v.getShape());
        }
        int n = Math.toIntExact(shape.get(0));
        Objects.checkFromIndexSize(start, n, capacity());
        if (n == 0) {
            return;
        }
        try (NDManager tmp = manager.newSubManager()) {
            writePart(layer, KvPart.KEY, start, n, k, tmp);
            writePart(layer, KvPart.VALUE, start, n, v, tmp);
        }
    }

    private void writePart(int layer, KvPart part, int start, int n, NDArray src, NDManager tmp) {
        NDArray data = src;
        if (src.getDataType() != layout.dataType()) {
            data = src.toType(layout.dataType(), false);
            data.attach(tmp);
        }
        int bt = layout.blockTokens();
        int end = start + n;
        for (int r = 0; r < runs.length; r++) {
            int runStart = runs[r].dst() * bt;
            int runEnd = runStart + runs[r].count() * bt;
            if (runEnd <= start) {
                continue;
            }
            if (runStart >= end) {
                break;
            }
            int a = Math.max(start, runStart);
            int b = Math.min(end, runEnd);
            NDArray chunk = a == start && b == end ? data : data.get(tmp, new NDIndex().addSliceDim(a - start, b - start));
            if (pool.hasHostViews()) {
                view(layer, part, r).set(new NDIndex().addSliceDim(a - runStart, b - runStart), chunk);
            } else {
                pool.write(layer, part, rowOffset(r, a - runStart), chunk.toByteBuffer());
            }
        }
    }

    /** The offset in its (layer, part) of row {@code row} of memory run {@code r}. */
    private long rowOffset(int r, int row) {
        return ((long) runs[r].src() * layout.blockTokens() + row) * layout.tokenBytes();
    }

    /** Rows {@code [0, rows)} of memory run {@code r}, copied out of a device pool into {@code target}. */
    private NDArray copyRows(int layer, KvPart part, int r, int rows, NDManager target) {
        ByteBuffer bytes = ByteBuffer.allocateDirect(rows * layout.tokenBytes()).order(ByteOrder.nativeOrder());
        pool.read(layer, part, rowOffset(r, 0), bytes);
        return target.create(bytes.flip(), new Shape(rows, layout.kvDim()), layout.dataType());
    }

    @Override
    public NDArray keys(int layer, int length, NDManager target) {
        return rows(layer, KvPart.KEY, length, target);
    }

    @Override
    public NDArray values(int layer, int length, NDManager target) {
        return rows(layer, KvPart.VALUE, length, target);
    }

    /**
     * Positions {@code [0, length)} of a (layer, part) in the cache's own data type, attached to
     * {@code target}; a view of the registered memory when they lie in one memory run of a host
     * pool, a copy from a device pool.
     */
    public NDArray rawRows(int layer, KvPart part, int length, NDManager target) {
        ensureOpen();
        Objects.checkIndex(layer, layout.layers());
        if (length <= 0 || length > capacity()) {
            throw new IndexOutOfBoundsException("length " + length + " out of range (0, " + capacity() + "]");
        }
        int bt = layout.blockTokens();
        NDList parts = new NDList();
        for (int r = 0; r < runs.length; r++) {
            int runStart = runs[r].dst() * bt;
            if (runStart >= length) {
                break;
            }
            int take = Math.min(runs[r].count() * bt, length - runStart);
            parts.add(pool.hasHostViews() ? view(layer, part, r).get(target, new NDIndex().addSliceDim(0, take))
                    : copyRows(layer, part, r, take, target));
        }
        if (parts.size() == 1) {
            return parts.get(0);
        }
        NDArray joined = NDArrays.concat(parts, 0);
        joined.attach(target);
        return joined;
    }

    private NDArray rows(int layer, KvPart part, int length, NDManager target) {
        NDArray raw = rawRows(layer, part, length, target);
        if (raw.getDataType() == DataType.FLOAT32) {
            return raw;
        }
        NDArray f = raw.toType(DataType.FLOAT32, false);
        f.attach(target);
        return f;
    }

    /** The view over memory run {@code r} of a (layer, part), created on first use. */
    private NDArray view(int layer, KvPart part, int r) {
        NDArray[] row = views[layer * 2 + part.index()];
        NDArray v = row[r];
        if (v == null) {
            v = pool.view(layer, part, runs[r].src(), runs[r].count(), manager);
            row[r] = v;
        }
        return v;
    }

    private void ensureOpen() {
        if (closed.get()) {
            throw new KvException(KvError.CLOSED, "this paged KV cache was closed");
        }
        if (pool.isClosed()) {
            throw new KvException(KvError.CLOSED, "the KV pool of this cache was closed");
        }
    }

    /** Frees the views and, for a cache from {@link PagedKvPool#newCache}, releases the blocks. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            manager.close();
            if (ownsBlocks) {
                pool.allocator().release(blocks);
            }
        }
    }

    @Override
    public String toString() {
        return "PagedKvCache[" + blocks.length + " blocks, " + runs.length + " runs, capacity " + capacity() + "]";
    }
}
