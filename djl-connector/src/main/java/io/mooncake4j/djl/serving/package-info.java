/**
 * DJL Serving integration: {@link io.mooncake4j.djl.serving.KvTransferTranslatorFactory} makes a
 * model with {@code role=prefill} or {@code role=decode} run a Llama model over a paged KV cache
 * and move that cache between workers with the KV connector, on a transfer engine shared per
 * process ({@link io.mooncake4j.djl.serving.SharedTransferEngine}).
 */
package io.mooncake4j.djl.serving;
