package io.mooncake4j.transport.efa;

import io.mooncake4j.EngineConfig;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Every setting of the EFA transport, read once when the transport starts (same lookup order as
 * {@link EngineConfig}: explicit setting, environment variable, system property in lower case with
 * dots, default). Documented in docs/configuration.md.
 *
 * <ul>
 *   <li>{@value #PROVIDER}: the libfabric provider; default libfabric's {@value #FI_PROVIDER}, else
 *       {@code efa}. {@code tcp;ofi_rxm}, {@code shm}, {@code net}, {@code sockets} run the same code
 *       without EFA hardware.
 *   <li>{@value EngineConfig#DEVICE}: domains (NICs) to use, comma separated; default all that
 *       {@code fi_getinfo} lists for the provider.
 *   <li>{@value EngineConfig#SLICE_SIZE}: requests contiguous on both sides are merged into one
 *       operation up to this size, and larger requests are split into parts of this size; default 1
 *       MiB.
 *   <li>{@value #MAX_WR}: operations in flight per NIC; default (and upper bound) the provider's
 *       transmit queue depth.
 *   <li>{@value #CQ_THREADS}: completion-queue progress threads; default 1; 0 = one per NIC.
 * </ul>
 */
final class EfaSettings {
    /** The libfabric provider name. */
    static final String PROVIDER = "MC_EFA_PROVIDER";
    /** libfabric's own provider filter, honoured when {@value #PROVIDER} is not set. */
    static final String FI_PROVIDER = "FI_PROVIDER";
    /** Operations in flight per NIC. */
    static final String MAX_WR = "MC_MAX_WR";
    /** Progress threads; 0 = one per NIC. */
    static final String CQ_THREADS = "MC_EFA_CQ_THREADS";
    /** The provider when nothing names one. */
    static final String DEFAULT_PROVIDER = "efa";

    final String provider;
    final List<String> devices;
    final long sliceSize;
    final int maxWr;
    final int cqThreads;

    EfaSettings(EngineConfig config) {
        this.provider = provider(config);
        String device = config.device();
        this.devices =
                device == null || device.equalsIgnoreCase("all")
                        ? List.of()
                        : Arrays.stream(device.split(",")).map(String::trim).filter(s -> !s.isEmpty()).toList();
        this.sliceSize = config.sliceSize();
        this.maxWr = (int) config.getLong(MAX_WR, 0, 0, 1 << 20);
        this.cqThreads = (int) config.getLong(CQ_THREADS, 1, 0, 64);
    }

    /** The provider {@code config} names (MC_EFA_PROVIDER, else FI_PROVIDER, else efa). */
    static String provider(EngineConfig config) {
        String p = config.get(PROVIDER, config.get(FI_PROVIDER, DEFAULT_PROVIDER));
        return p.toLowerCase(Locale.ROOT);
    }

    @Override
    public String toString() {
        return "EfaSettings[provider="
                + provider
                + ", devices="
                + (devices.isEmpty() ? "all" : devices)
                + ", sliceSize="
                + sliceSize
                + ", maxWr="
                + (maxWr == 0 ? "provider tx depth" : maxWr)
                + ", cqThreads="
                + cqThreads
                + "]";
    }
}
