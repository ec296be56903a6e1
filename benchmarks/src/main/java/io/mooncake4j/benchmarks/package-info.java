/**
 * JMH micro-benchmarks of the engine's fixed costs (submit and completion per request, JNI crossing,
 * descriptor lookup, registry pin/unpin, allocation per request). Whole-system throughput is {@code
 * bin/mooncake4j bench}; how to run both and the figures are in {@code docs/benchmarks.md}.
 */
package io.mooncake4j.benchmarks;
