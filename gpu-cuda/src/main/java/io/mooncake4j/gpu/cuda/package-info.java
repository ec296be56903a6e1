/**
 * GPU memory for Mooncake4j through JCuda: a {@link io.mooncake4j.spi.DeviceMemoryProvider} for
 * {@code cuda:N} (allocation, location detection, same-process copies with a gather-copy kernel).
 * JCuda is an optional dependency: without it, or without a GPU, the provider reports why.
 */
package io.mooncake4j.gpu.cuda;
