/**
 * {@code mooncake4j bench} (Mooncake's {@code transfer_engine_bench}: same flags, same closing line,
 * plus {@code --verify} and {@code --sweep}) and {@code mooncake4j probe} (first-submit latency).
 */
package io.mooncake4j.samples.bench;
