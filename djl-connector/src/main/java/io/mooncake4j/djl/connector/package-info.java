/**
 * Moving requests' KV caches between prefill and decode workers: {@link
 * io.mooncake4j.djl.connector.KvConnector} (push by default, pull as an option), the JSON {@link
 * io.mooncake4j.djl.connector.KvTransferParams} the application carries between workers, and
 * per-request {@link io.mooncake4j.djl.connector.KvTransferStats}. Not yet stable: names and JSON
 * fields may change before 1.0.
 */
package io.mooncake4j.djl.connector;
