package io.mooncake4j.metadata.etcd;

import io.mooncake4j.spi.MetadataContext;
import io.mooncake4j.spi.MetadataStore;
import io.mooncake4j.spi.MetadataStoreProvider;
import java.util.Locale;
import java.util.Objects;

/**
 * Mooncake's etcd metadata mode, chosen for {@code MC_METADATA_SERVER=etcd://host:port[,host:port...]}
 * and, as Mooncake does, for a bare {@code host:port[,host:port...]}. Found with {@link
 * java.util.ServiceLoader} when this module's jar is on the classpath.
 */
public final class EtcdMetadataStoreProvider extends MetadataStoreProvider {
    /** For {@link java.util.ServiceLoader}. */
    public EtcdMetadataStoreProvider() {}

    @Override
    public boolean accepts(String uri) {
        if (uri == null || uri.isBlank()) {
            return false;
        }
        String u = uri.trim();
        if (u.toLowerCase(Locale.ROOT).startsWith(EtcdSettings.SCHEME)) {
            return true;
        }
        if (u.contains("://") || u.equalsIgnoreCase("P2PHANDSHAKE")) {
            return false;
        }
        try {
            EtcdSettings.parseEndpoints(u);
            return true;
        } catch (RuntimeException e) {
            return false;
        }
    }

    @Override
    public String name() {
        return "etcd";
    }

    /**
     * Connects lazily: nothing goes to etcd before the engine's first publish.
     *
     * @throws io.mooncake4j.MooncakeException {@code CONFIGURATION} for a malformed URI or setting
     */
    @Override
    public MetadataStore create(String uri, MetadataContext context) {
        Objects.requireNonNull(context, "context");
        return new EtcdMetadataStore(EtcdSettings.of(uri, context.config()), context);
    }

    @Override
    public String toString() {
        return getClass().getName() + "[etcd]";
    }
}
