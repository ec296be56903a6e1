/**
 * Mooncake's handshake RPC (length-prefixed JSON frames over TCP): the frame codec, a concurrent
 * bounded server and a one-connection-per-call client. Internal: not for use outside this module.
 */
package io.mooncake4j.internal.handshake;
