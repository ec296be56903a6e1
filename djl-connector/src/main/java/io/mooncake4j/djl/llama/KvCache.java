package io.mooncake4j.djl.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;

/**
 * The keys and values a {@link LlamaModel} writes and reads per layer: for each layer and position
 * one row of {@code kvDim} floats of K and one of V (RoPE already applied to K).
 *
 * <p>Position {@code p}'s rows must be written before a forward at a later position reads them.
 * Implementations need not be thread-safe.
 */
public interface KvCache {

    /**
     * Returns the number of positions the cache can hold.
     *
     * @return the capacity in positions
     */
    int capacity();

    /**
     * Returns the number of layers.
     *
     * @return the layer count
     */
    int layers();

    /**
     * Returns the width of one position's K (or V) row in one layer.
     *
     * @return {@code nKvHeads * headSize}
     */
    int kvDim();

    /**
     * Stores K and V rows for positions {@code [start, start + k.rows)} of a layer.
     *
     * @param layer the layer, from 0
     * @param start the first position
     * @param k keys, FLOAT32 {@code [n, kvDim]}
     * @param v values, FLOAT32 {@code [n, kvDim]}
     */
    void write(int layer, int start, NDArray k, NDArray v);

    /**
     * Returns the keys of positions {@code [0, length)} of a layer.
     *
     * @param layer the layer, from 0
     * @param length the number of positions
     * @param manager the manager the result is attached to
     * @return FLOAT32 {@code [length, kvDim]}; it may share memory with the cache, so use it before
     *     the same rows are written again
     */
    NDArray keys(int layer, int length, NDManager manager);

    /**
     * Returns the values of positions {@code [0, length)} of a layer.
     *
     * @param layer the layer, from 0
     * @param length the number of positions
     * @param manager the manager the result is attached to
     * @return FLOAT32 {@code [length, kvDim]}; it may share memory with the cache, so use it before
     *     the same rows are written again
     */
    NDArray values(int layer, int length, NDManager manager);

    /**
     * Copies positions {@code [0, length)} of every layer from one cache into another, e.g. from a
     * prefill's local cache into registered memory for transfer.
     *
     * @param from the source
     * @param to the destination, with the same layers and kvDim and at least {@code length}
     *     capacity
     * @param length the number of positions
     * @param manager a manager for temporary arrays
     */
    static void copy(KvCache from, KvCache to, int length, NDManager manager) {
        if (from.layers() != to.layers() || from.kvDim() != to.kvDim()) {
            throw new IllegalArgumentException(
                    "caches differ: "
                            + from.layers()
                            + " layers x kvDim "
                            + from.kvDim()
                            + " vs "
                            + to.layers()
                            + " x "
                            + to.kvDim());
        }
        if (length < 0 || length > from.capacity() || length > to.capacity()) {
            throw new IllegalArgumentException(
                    "length "
                            + length
                            + " exceeds a capacity: "
                            + from.capacity()
                            + " / "
                            + to.capacity());
        }
        if (length == 0) {
            return;
        }
        for (int layer = 0; layer < from.layers(); layer++) {
            try (NDManager tmp = manager.newSubManager()) {
                to.write(layer, 0, from.keys(layer, length, tmp), from.values(layer, length, tmp));
            }
        }
    }
}
