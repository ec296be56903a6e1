/**
 * Built-in metadata stores. {@code P2PHANDSHAKE}: no store at all, a segment's name is its
 * handshake address and its descriptor is fetched from the peer itself. Internal: not for use
 * outside this module.
 */
package io.mooncake4j.internal.metadata;
