package io.mooncake4j.djl.serving;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Submission;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.spi.TransportProvider;
import io.mooncake4j.testkit.InMemoryTransportProvider;

/**
 * The test kit's in-memory transport under another protocol name, {@code ctx-mem}, listed in NO
 * {@code META-INF/services} file on the test classpath: only a classloader that the test adds as
 * the thread context classloader makes it discoverable, as DJL Serving does with plugin jars.
 */
public final class ContextOnlyTransportProvider extends TransportProvider {
    public static final String PROTOCOL = "ctx-mem";

    @Override
    public String protocol() {
        return PROTOCOL;
    }

    @Override
    public Throwable unavailabilityCause(EngineConfig config) {
        return null;
    }

    @Override
    public boolean isAutoSelectable(EngineConfig config) {
        return false;
    }

    @Override
    public Transport create(TransportContext context) {
        Transport t = new InMemoryTransportProvider().create(context);
        return new Transport() {
            @Override
            public String protocol() {
                return PROTOCOL;
            }

            @Override
            public void describe(JsonObject descriptor) {
                t.describe(descriptor);
            }

            @Override
            public RegionRegistration registerRegion(MemoryRegion region) {
                return t.registerRegion(region);
            }

            @Override
            public void unregisterRegion(MemoryRegion region, RegionRegistration registration) {
                t.unregisterRegion(region, registration);
            }

            @Override
            public void submit(SegmentDescriptor peer, Submission work) {
                t.submit(peer, work);
            }

            @Override
            public void abort(Submission work) {
                t.abort(work);
            }

            @Override
            public void close() {
                t.close();
            }
        };
    }
}
