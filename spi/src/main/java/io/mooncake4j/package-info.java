/**
 * The Mooncake4j engine API: {@link io.mooncake4j.TransferEngine} registers memory, opens peers'
 * segments and moves bytes with batched one-sided READ/WRITE over a transport chosen at runtime.
 */
package io.mooncake4j;
