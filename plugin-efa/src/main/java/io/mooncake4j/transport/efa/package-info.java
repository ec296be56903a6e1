/**
 * The EFA transport over libfabric (JNI). This module is reserved in the build so that the layout
 * and dependency direction are fixed; the transport itself is the subject of the EFA issue and is
 * not shipped yet, so no provider is registered and {@code MOONCAKE_PROTOCOL=efa} fails with the
 * list of available transports.
 */
package io.mooncake4j.transport.efa;
