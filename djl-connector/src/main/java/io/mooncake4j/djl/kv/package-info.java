/**
 * A paged KV cache in registered memory: {@link io.mooncake4j.djl.kv.KvLayout} places blocks,
 * {@link io.mooncake4j.djl.kv.PagedKvPool} owns the region and exposes blocks as zero-copy DJL
 * arrays, {@link io.mooncake4j.djl.kv.BlockAllocator} counts references so blocks in flight are
 * never reused, and {@link io.mooncake4j.djl.kv.PagedKvCache} is one request's cache for the model.
 */
package io.mooncake4j.djl.kv;
