package io.mooncake4j.spi;

/**
 * A metadata service plugin (P2P handshake, etcd, HTTP), found with {@link java.util.ServiceLoader}
 * and chosen by the scheme of {@code MC_METADATA_SERVER}. Same checklist as {@link
 * TransportProvider}.
 */
public abstract class MetadataStoreProvider {
    /** Whether this provider serves the given {@code MC_METADATA_SERVER} value. Never throws. */
    public abstract boolean accepts(String uri);

    /** A short name for messages (e.g. {@code P2PHANDSHAKE}, {@code etcd}). */
    public abstract String name();

    /** Connects to the store. */
    public abstract MetadataStore create(String uri, MetadataContext context);
}
