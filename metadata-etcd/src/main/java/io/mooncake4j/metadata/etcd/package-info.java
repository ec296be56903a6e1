/**
 * The etcd metadata store ({@code MC_METADATA_SERVER=etcd://host:port[,host:port...]}): Mooncake's
 * key layout in etcd, entries bound to a lease kept alive by this engine, and watches that refresh
 * the descriptors of the segments it opened. Public: {@link
 * io.mooncake4j.metadata.etcd.EtcdMetadataStoreProvider} and {@link
 * io.mooncake4j.metadata.etcd.EtcdSettings}; the rest is internal to this module.
 */
package io.mooncake4j.metadata.etcd;
