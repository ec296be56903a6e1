/**
 * The PD-disaggregated serving app of {@code bin/mooncake4j}: {@code demo}, {@code generate}, {@code
 * loadgen} and the three servers ({@code router}, {@code prefill}, {@code decode}) that move each
 * request's KV cache from prefill to decode through the transfer engine.
 */
package io.mooncake4j.samples.serving;
