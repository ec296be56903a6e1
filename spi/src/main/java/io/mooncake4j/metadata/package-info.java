/**
 * Segment descriptors in Mooncake's JSON form, as peers exchange them through the metadata service
 * (the P2P handshake server or a store such as etcd).
 */
package io.mooncake4j.metadata;
