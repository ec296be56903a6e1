/**
 * Engine internals: memory registry, transport selection, deadlines. Not an API: may change in any
 * release; nothing outside the spi module may use it.
 */
package io.mooncake4j.internal;
