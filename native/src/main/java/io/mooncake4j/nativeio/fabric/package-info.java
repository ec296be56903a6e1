/**
 * The JNI binding to libfabric used by the EFA transport: one class per native handle ({@link
 * io.mooncake4j.nativeio.fabric.FabricNic}: fabric, domain, address vector, completion queue and
 * endpoint; {@link io.mooncake4j.nativeio.fabric.FabricMemoryRegion}), children created by their
 * parent. libfabric itself is opened at run time, never bundled: see {@link
 * io.mooncake4j.nativeio.fabric.LibFabric}.
 */
package io.mooncake4j.nativeio.fabric;
