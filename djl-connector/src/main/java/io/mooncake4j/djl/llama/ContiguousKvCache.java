package io.mooncake4j.djl.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

import java.util.Objects;

/**
 * A {@link KvCache} holding one FLOAT32 {@code [capacity, kvDim]} array of keys and one of values
 * per layer, for generation within one process. {@link #keys} and {@link #values} return views of
 * these arrays (no copy).
 */
public final class ContiguousKvCache implements KvCache, AutoCloseable {

    private final int capacity;
    private final int kvDim;
    private final NDManager manager;
    private final NDArray[] keys;
    private final NDArray[] values;

    /**
     * Allocates a zeroed cache for a model.
     *
     * @param config the model's configuration
     * @param capacity the number of positions, at most {@code config.seqLen()}
     * @param manager the manager under which a sub-manager holds the arrays
     */
    public ContiguousKvCache(LlamaConfig config, int capacity, NDManager manager) {
        this(config.nLayers(), config.kvDim(), checkCapacity(config, capacity), manager);
    }

    /**
     * Allocates a zeroed cache.
     *
     * @param layers the number of layers
     * @param kvDim the width of one position's K (or V) row
     * @param capacity the number of positions
     * @param manager the manager under which a sub-manager holds the arrays
     */
    public ContiguousKvCache(int layers, int kvDim, int capacity, NDManager manager) {
        if (layers <= 0 || kvDim <= 0 || capacity <= 0) {
            throw new IllegalArgumentException(
                    "layers, kvDim and capacity must be positive, got "
                            + layers
                            + ", "
                            + kvDim
                            + ", "
                            + capacity);
        }
        this.capacity = capacity;
        this.kvDim = kvDim;
        this.manager = Objects.requireNonNull(manager, "manager").newSubManager();
        this.keys = new NDArray[layers];
        this.values = new NDArray[layers];
        Shape shape = new Shape(capacity, kvDim);
        for (int l = 0; l < layers; l++) {
            keys[l] = this.manager.zeros(shape, DataType.FLOAT32);
            values[l] = this.manager.zeros(shape, DataType.FLOAT32);
        }
    }

    private static int checkCapacity(LlamaConfig config, int capacity) {
        if (capacity > config.seqLen()) {
            throw new IllegalArgumentException(
                    "capacity " + capacity + " exceeds the model's seqLen " + config.seqLen());
        }
        return capacity;
    }

    @Override
    public int capacity() {
        return capacity;
    }

    @Override
    public int layers() {
        return keys.length;
    }

    @Override
    public int kvDim() {
        return kvDim;
    }

    @Override
    public void write(int layer, int start, NDArray k, NDArray v) {
        Objects.checkIndex(layer, keys.length);
        Shape shape = k.getShape();
        if (shape.dimension() != 2 || shape.get(1) != kvDim || !shape.equals(v.getShape())) {
            throw new IllegalArgumentException(
                    "expected K and V of shape [n, "
                            + kvDim
                            + "], got "
                            + shape
                            + " and "
                            + v.getShape());
        }
        int n = Math.toIntExact(shape.get(0));
        Objects.checkFromIndexSize(start, n, capacity);
        NDIndex rows = new NDIndex().addSliceDim(start, start + n);
        keys[layer].set(rows, k);
        values[layer].set(rows, v);
    }

    @Override
    public NDArray keys(int layer, int length, NDManager manager) {
        return rows(keys, layer, length, manager);
    }

    @Override
    public NDArray values(int layer, int length, NDManager manager) {
        return rows(values, layer, length, manager);
    }

    private NDArray rows(NDArray[] arrays, int layer, int length, NDManager target) {
        Objects.checkIndex(layer, arrays.length);
        if (length <= 0 || length > capacity) {
            throw new IndexOutOfBoundsException(
                    "length " + length + " out of range (0, " + capacity + "]");
        }
        return arrays[layer].get(target, new NDIndex().addSliceDim(0, length));
    }

    /** Frees the arrays. */
    @Override
    public void close() {
        manager.close();
    }
}
