package io.mooncake4j.djl.connector;

import com.google.gson.JsonObject;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.MetadataContext;
import io.mooncake4j.spi.MetadataStore;
import io.mooncake4j.spi.MetadataStoreProvider;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A metadata store for tests ({@code MC_METADATA_SERVER=}{@value #NAME}): Mooncake's P2P handshake,
 * except that the descriptor of a segment given a {@link HoldingTcpProxy} with {@link #proxy}
 * publishes the proxy's port as its {@code tcp_data_port}, so that engines reach that peer's data
 * server through the proxy. Ask for the proxy before any engine fetches the segment's descriptor
 * (engines keep descriptors they fetched).
 */
public final class ProxiedP2pMetadataStoreProvider extends MetadataStoreProvider {
    /** The {@code MC_METADATA_SERVER} value that selects this store. */
    static final String NAME = "P2PHANDSHAKE-VIA-TEST-PROXY";
    private static final String P2P = "P2PHANDSHAKE";
    private static final Map<String, HoldingTcpProxy> PROXIES = new ConcurrentHashMap<>();

    /** For {@link ServiceLoader}. */
    public ProxiedP2pMetadataStoreProvider() {}

    /** The proxy in front of a segment's data server, created on first use. */
    static HoldingTcpProxy proxy(String segmentName) {
        return PROXIES.computeIfAbsent(segmentName, n -> new HoldingTcpProxy());
    }

    /** Closes every proxy; segments fetched afterwards are reached directly. */
    static void closeProxies() {
        for (String name : new ArrayList<>(PROXIES.keySet())) {
            HoldingTcpProxy p = PROXIES.remove(name);
            if (p != null) {
                p.close();
            }
        }
    }

    @Override
    public boolean accepts(String uri) {
        return uri != null && uri.trim().equalsIgnoreCase(NAME);
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public MetadataStore create(String uri, MetadataContext context) {
        for (MetadataStoreProvider p : ServiceLoader.load(MetadataStoreProvider.class, getClass().getClassLoader())) {
            if (!(p instanceof ProxiedP2pMetadataStoreProvider) && p.accepts(P2P)) {
                return new Store(p.create(P2P, context));
            }
        }
        throw new IllegalStateException("no " + P2P + " metadata store on the class path to wrap");
    }

    private static final class Store implements MetadataStore {
        private final MetadataStore p2p;

        Store(MetadataStore p2p) {
            this.p2p = p2p;
        }

        @Override
        public String segmentName(String hostname, int rpcPort) {
            return p2p.segmentName(hostname, rpcPort);
        }

        @Override
        public void publish(SegmentDescriptor descriptor, InetSocketAddress rpcAddress) {
            p2p.publish(descriptor, rpcAddress);
        }

        @Override
        public SegmentDescriptor fetch(String segmentName, Duration timeout) {
            SegmentDescriptor d = p2p.fetch(segmentName, timeout);
            HoldingTcpProxy proxy = PROXIES.get(segmentName);
            long port = d.longField("tcp_data_port", -1);
            if (proxy == null || port <= 0) {
                return d;
            }
            proxy.forwardTo(new InetSocketAddress(p2p.rpcAddress(segmentName).getAddress(), (int) port));
            JsonObject extra = d.extra();
            extra.addProperty("tcp_data_port", proxy.port());
            return new SegmentDescriptor(d.name(), d.protocol(), d.buffers(), extra);
        }

        @Override
        public InetSocketAddress rpcAddress(String segmentName) {
            return p2p.rpcAddress(segmentName);
        }

        @Override
        public void close() {
            p2p.close();
        }
    }
}
