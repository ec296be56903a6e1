package io.mooncake4j.internal;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.TransportProvider;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * Chooses the transport: the protocol named by the explicit setting, {@code MOONCAKE_PROTOCOL} or
 * the {@code mooncake.protocol} system property (in that order), else the highest-priority available
 * provider, ties broken by class name. Never falls back from a named protocol to another.
 */
public final class TransportSelector {
    private TransportSelector() {}

    /** Chooses among the providers visible to ServiceLoader. */
    public static TransportProvider select(EngineConfig config) {
        return select(config, ProviderLoader.load(TransportProvider.class));
    }

    /** Chooses among {@code providers}. */
    public static TransportProvider select(EngineConfig config, List<TransportProvider> providers) {
        String wanted = config.protocol();
        if (wanted != null) {
            for (TransportProvider p : providers) {
                if (p.protocol().toLowerCase(Locale.ROOT).equals(wanted)) {
                    if (safeAvailable(p)) {
                        return p;
                    }
                    throw new MooncakeException(
                            ErrorCode.TRANSPORT_UNAVAILABLE,
                            "protocol '" + wanted + "' (" + config.sourceOf(EngineConfig.PROTOCOL)
                                    + ") is not available here: " + describeAll(providers));
                }
            }
            throw new MooncakeException(
                    ErrorCode.TRANSPORT_UNAVAILABLE,
                    "unknown protocol '" + wanted + "' (" + config.sourceOf(EngineConfig.PROTOCOL)
                            + "); known: " + describeAll(providers)
                            + ". Put the plugin jar on the classpath or set MOONCAKE_PROTOCOL to a known one");
        }
        return providers.stream()
                .filter(p -> p.isAutoSelectable() && safeAvailable(p))
                .max(Comparator.comparingInt(TransportProvider::priority)
                        .thenComparing((a, b) -> b.getClass().getName().compareTo(a.getClass().getName())))
                .orElseThrow(() -> new MooncakeException(
                        ErrorCode.TRANSPORT_UNAVAILABLE,
                        "no transport available: " + describeAll(providers)
                                + ". Add mooncake4j-plugin-tcp to the classpath"));
    }

    /** One line per provider: its protocol and whether (or why not) it is available. */
    public static String describeAll(List<TransportProvider> providers) {
        if (providers.isEmpty()) {
            return "no transport plugins found on the classpath";
        }
        StringBuilder sb = new StringBuilder();
        for (TransportProvider p : providers) {
            if (sb.length() > 0) {
                sb.append("; ");
            }
            sb.append(p.protocol()).append(" (").append(p.getClass().getName()).append(", ");
            if (safeAvailable(p)) {
                sb.append("available, priority ").append(p.priority());
            } else {
                Throwable cause = safeCause(p);
                sb.append("unavailable: ").append(cause == null ? "no reason given" : cause.toString());
            }
            sb.append(')');
        }
        return sb.toString();
    }

    private static boolean safeAvailable(TransportProvider p) {
        try {
            return p.isAvailable();
        } catch (RuntimeException | LinkageError e) {
            return false;
        }
    }

    private static Throwable safeCause(TransportProvider p) {
        try {
            return p.unavailabilityCause();
        } catch (RuntimeException | LinkageError e) {
            return e;
        }
    }
}
