package io.mooncake4j.djl.kv;

/**
 * Consecutive blocks that are also consecutive on the other side of a transfer: {@code count}
 * blocks starting at id {@code src} locally and at id {@code dst} on the peer, moved as one request
 * per (layer, part).
 *
 * @param src the first local block id
 * @param dst the first peer block id
 * @param count the number of blocks, positive
 */
public record BlockRun(int src, int dst, int count) {}
