package io.mooncake4j.transport.tcp;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.spi.TransportProvider;

/**
 * Provides the {@code tcp} transport: always available (plain sockets), priority 5, so any faster
 * transport that is available wins when no protocol is named.
 */
public final class TcpTransportProvider extends TransportProvider {
    /** For {@link java.util.ServiceLoader}. */
    public TcpTransportProvider() {}

    @Override
    public String protocol() {
        return "tcp";
    }

    @Override
    public Throwable unavailabilityCause(EngineConfig config) {
        return null;
    }

    @Override
    public int priority() {
        return 5;
    }

    @Override
    public Transport create(TransportContext context) {
        return new TcpTransport(context);
    }
}
