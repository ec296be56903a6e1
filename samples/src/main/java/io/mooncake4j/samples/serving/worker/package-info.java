/**
 * The three servers: the prefill worker (batched prefill into registered KV blocks, pushed through
 * the connector), the decode worker (the completions endpoint, decoding from the paged cache) and the
 * router in front of them.
 */
package io.mooncake4j.samples.serving.worker;
