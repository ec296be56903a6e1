package io.mooncake4j.benchmarks;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.LocalMemory;
import io.mooncake4j.spi.Submission;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.spi.TransportProvider;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A transport that moves nothing: it gives benchmarks an engine's {@link LocalMemory}, the view
 * through which every transport pins the ranges it serves, so that the registry is measured through
 * the SPI rather than the engine's internals. Never chosen unless named ({@link #PROTOCOL}).
 */
public final class LocalMemoryProbe extends TransportProvider {
    /** The protocol that selects this provider. */
    public static final String PROTOCOL = "local-memory-probe";

    private static final Set<TransportContext> CONTEXTS = ConcurrentHashMap.newKeySet();

    /** Settings for an engine whose transport is this probe: no environment, loopback, any port. */
    public static EngineConfig config() {
        return EngineConfig.builder()
                .environment(Map.of())
                .protocol(PROTOCOL)
                .localHostname("127.0.0.1")
                .build();
    }

    /** The local memory of {@code engine}, which must have been created with {@link #config()}. */
    public static LocalMemory localMemoryOf(TransferEngine engine) {
        for (TransportContext c : CONTEXTS) {
            if (c.localSegmentName().equals(engine.localSegmentName())) {
                return c.localMemory();
            }
        }
        throw new IllegalArgumentException(
                engine + " does not use the " + PROTOCOL + " transport: create it with LocalMemoryProbe.config()");
    }

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
        CONTEXTS.add(context);
        return new Transport() {
            @Override
            public String protocol() {
                return PROTOCOL;
            }

            @Override
            public void describe(JsonObject descriptor) {}

            @Override
            public void submit(SegmentDescriptor peer, Submission work) {
                throw new UnsupportedOperationException(PROTOCOL + " moves no data: use the tcp transport");
            }

            @Override
            public void abort(Submission work) {}

            @Override
            public void close() {
                CONTEXTS.remove(context);
            }
        };
    }
}
