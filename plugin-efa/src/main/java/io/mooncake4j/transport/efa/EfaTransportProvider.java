package io.mooncake4j.transport.efa;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.nativeio.fabric.FabricInfo;
import io.mooncake4j.nativeio.fabric.LibFabric;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.spi.TransportProvider;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Provides the {@code efa} transport: available when libfabric loads and the configured provider
 * ({@code MC_EFA_PROVIDER}, else {@code FI_PROVIDER}, else {@code efa}, read from the environment and
 * system properties) offers an RDM endpoint with RMA. Priority 7, so it wins over TCP where EFA is
 * present and no protocol is named. Availability is computed once per provider name and keeps the
 * cause.
 */
public final class EfaTransportProvider extends TransportProvider {
    private static final Map<String, Throwable> CAUSES = new ConcurrentHashMap<>();
    private static final Throwable AVAILABLE = new Throwable("available");

    /** For {@link java.util.ServiceLoader}. */
    public EfaTransportProvider() {}

    @Override
    public String protocol() {
        return "efa";
    }

    /** For the libfabric provider the engine's settings name: probed once per provider name. */
    @Override
    public Throwable unavailabilityCause(EngineConfig config) {
        try {
            String provider = EfaSettings.provider(config);
            Throwable cause = CAUSES.computeIfAbsent(provider, EfaTransportProvider::probe);
            return cause == AVAILABLE ? null : cause;
        } catch (RuntimeException | LinkageError e) {
            return e;
        }
    }

    /** Why {@code provider} cannot serve here, or {@link #AVAILABLE}. */
    static Throwable probe(String provider) {
        if (!LibFabric.isAvailable()) {
            return LibFabric.unavailabilityCause();
        }
        try (FabricInfo.Query q = FabricInfo.Query.run(provider, null, EfaNic.MR_MODE_HINTS)) {
            return q.infos().isEmpty()
                    ? new IllegalStateException("libfabric provider '" + provider + "' lists no NIC")
                    : AVAILABLE;
        } catch (RuntimeException e) {
            return new IllegalStateException(
                    "libfabric provider '"
                            + provider
                            + "' offers no RDM endpoint with RMA here ("
                            + e.getMessage()
                            + "); on AWS install the EFA driver, elsewhere set "
                            + EfaSettings.PROVIDER
                            + " (e.g. tcp;ofi_rxm or shm); libfabric: "
                            + LibFabric.path(),
                    e);
        }
    }

    @Override
    public int priority() {
        return 7;
    }

    /**
     * Only on EFA hardware (provider {@code efa}): a software provider (e.g. {@code FI_PROVIDER=tcp}
     * set for another program) must not silently replace the TCP transport, which is faster than
     * libfabric's {@code tcp;ofi_rxm}. With a software provider, name the protocol ({@code
     * MOONCAKE_PROTOCOL=efa}, or {@code efa} in {@code MC_INSTALLED_TRANSPORTS}).
     */
    @Override
    public boolean isAutoSelectable(EngineConfig config) {
        try {
            return EfaSettings.DEFAULT_PROVIDER.equals(EfaSettings.provider(config));
        } catch (RuntimeException e) {
            return false;
        }
    }

    @Override
    public Transport create(TransportContext context) {
        return new EfaTransport(context, new EfaSettings(context.config()));
    }
}
