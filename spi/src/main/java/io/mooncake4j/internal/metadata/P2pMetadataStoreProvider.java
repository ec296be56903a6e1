package io.mooncake4j.internal.metadata;

import io.mooncake4j.spi.MetadataContext;
import io.mooncake4j.spi.MetadataStore;
import io.mooncake4j.spi.MetadataStoreProvider;

import java.util.Locale;
import java.util.Objects;

/**
 * Mooncake's {@code P2PHANDSHAKE} mode: segment names are {@code host:port} handshake addresses and
 * descriptors come straight from the peers (see {@link P2pMetadataStore}). Chosen for {@code
 * MC_METADATA_SERVER=P2PHANDSHAKE} (any case) and when no metadata server is set.
 */
public final class P2pMetadataStoreProvider extends MetadataStoreProvider {
    /** The {@code MC_METADATA_SERVER} value that selects this store. */
    public static final String NAME = "P2PHANDSHAKE";

    /** For {@link java.util.ServiceLoader}. */
    public P2pMetadataStoreProvider() {}

    @Override
    public boolean accepts(String uri) {
        return uri == null || uri.isBlank() || uri.trim().toUpperCase(Locale.ROOT).equals(NAME);
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public MetadataStore create(String uri, MetadataContext context) {
        return new P2pMetadataStore(Objects.requireNonNull(context, "context"));
    }

    @Override
    public String toString() {
        return getClass().getName() + "[" + NAME + "]";
    }
}
