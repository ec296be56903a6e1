/**
 * The EFA transport over libfabric (JNI, {@code io.mooncake4j.nativeio.fabric}): protocol {@code
 * efa}, Mooncake's EFA descriptor and Connection handshake; runs on AWS EFA and, for tests and
 * machines without EFA, on libfabric's software providers ({@code tcp;ofi_rxm}, {@code shm}).
 */
package io.mooncake4j.transport.efa;
