/**
 * {@code mooncake4j soak}: a bounded run of checksummed, mixed-size READ and WRITE batches across
 * several target processes and every installed transport, reporting transfers, bytes, failures and
 * corruption.
 */
package io.mooncake4j.samples.soak;
