/**
 * A Llama-architecture decoder written with DJL {@link ai.djl.ndarray.NDArray} operations, reading
 * <a href="https://github.com/karpathy/llama2.c">llama2.c</a> checkpoints and tokenizers and
 * reproducing llama2.c's {@code run.c} output token for token.
 *
 * <p>{@link io.mooncake4j.djl.llama.LlamaWeights} loads (or randomly initializes) the weights,
 * {@link io.mooncake4j.djl.llama.LlamaModel} runs the transformer over a {@link
 * io.mooncake4j.djl.llama.KvCache}, {@link io.mooncake4j.djl.llama.Tokenizer} turns text into token
 * ids and back, and {@link io.mooncake4j.djl.llama.Generator} drives prefill (the prompt in one
 * batched forward) and decode (one token per step) with a {@link io.mooncake4j.djl.llama.Sampler}.
 * Prefill and decode may run in different processes, given a {@code KvCache} holding the prompt's
 * keys and values. All arrays are FLOAT32.
 */
package io.mooncake4j.djl.llama;
