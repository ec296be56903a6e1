/**
 * The JNI library that gives Java 17 direct access to native memory: buffer addresses, buffers over
 * addresses, page-aligned allocation and copies. Loaded from the jar, with failures reported.
 */
package io.mooncake4j.nativeio;
