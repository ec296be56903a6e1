/**
 * The JNI library that gives Java 17 direct access to native memory: buffer addresses, buffers over
 * addresses, page-aligned allocation and copies. Loaded from the jar, with failures reported. The
 * same library carries the libfabric binding ({@link io.mooncake4j.nativeio.fabric}).
 */
package io.mooncake4j.nativeio;
