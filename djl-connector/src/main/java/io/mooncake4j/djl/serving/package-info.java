/**
 * Serving a Llama model as a prefill or decode worker: {@link io.mooncake4j.djl.serving.KvRuntime}
 * wires an engine, a registered KV pool and the connector for every host (DJL Serving and the PD
 * app); {@link io.mooncake4j.djl.serving.KvTransferTranslator} is the DJL Serving translator
 * ({@code translator=} in {@code serving.properties}), on a transfer engine shared per copy of the
 * connector ({@link io.mooncake4j.djl.serving.SharedTransferEngine}).
 */
package io.mooncake4j.djl.serving;
