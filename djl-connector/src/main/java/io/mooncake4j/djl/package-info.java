/**
 * Mooncake4j for DJL: a paged KV cache in registered memory ({@code kv}), the connector that moves
 * it from prefill to decode workers over a {@link io.mooncake4j.TransferEngine} ({@code connector})
 * and the DJL Serving translator that puts both behind a model's {@code role} ({@code serving}).
 */
package io.mooncake4j.djl;
