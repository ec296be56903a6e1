package io.mooncake4j.internal;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.TransportProvider;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.TreeMap;

/**
 * Chooses the transports. The primary one: the protocol named by the explicit setting, {@code
 * MOONCAKE_PROTOCOL} or the {@code mooncake.protocol} system property (in that order), else the
 * highest-priority available provider, ties broken by class name; never falls back from a named
 * protocol to another. Beside it, to reach peers that publish other protocols: the protocols listed
 * in {@code MC_INSTALLED_TRANSPORTS} (each must be available), or by default every other available
 * auto-selectable provider (one per protocol, the highest priority).
 */
public final class TransportSelector {
    /** Higher priority first, then the smaller class name. */
    private static final Comparator<TransportProvider> PRIORITY =
            Comparator.comparingInt(TransportProvider::priority)
                    .thenComparing((a, b) -> b.getClass().getName().compareTo(a.getClass().getName()));

    private TransportSelector() {}

    /** The primary provider and those installed beside it, among the providers visible to ServiceLoader. */
    public static List<TransportProvider> selectInstalled(EngineConfig config) {
        return selectInstalled(config, ProviderLoader.load(TransportProvider.class));
    }

    /**
     * The primary provider ({@link #select}) first, then the providers installed beside it, in the
     * order {@code MC_INSTALLED_TRANSPORTS} names them, or by protocol name.
     *
     * @throws MooncakeException TRANSPORT_UNAVAILABLE when a named protocol is unknown or unavailable
     */
    public static List<TransportProvider> selectInstalled(EngineConfig config, List<TransportProvider> providers) {
        TransportProvider primary = select(config, providers);
        String primaryProtocol = primary.protocol().toLowerCase(Locale.ROOT);
        List<TransportProvider> out = new ArrayList<>();
        out.add(primary);
        List<String> named = config.installedTransports();
        if (named != null) {
            for (String protocol : named) {
                if (protocol.equals(primaryProtocol)) {
                    continue;
                }
                TransportProvider p = best(config, providers, protocol, false);
                if (p == null) {
                    throw new MooncakeException(
                            ErrorCode.TRANSPORT_UNAVAILABLE,
                            EngineConfig.INSTALLED_TRANSPORTS + " names protocol '" + protocol + "' ("
                                    + config.sourceOf(EngineConfig.INSTALLED_TRANSPORTS) + ") but it is "
                                    + (has(providers, protocol) ? "not available here" : "unknown")
                                    + ": " + describeAll(config, providers)
                                    + ". Put its plugin on the classpath or remove it from the list");
                }
                out.add(p);
            }
            return out;
        }
        TreeMap<String, TransportProvider> byProtocol = new TreeMap<>();
        for (TransportProvider p : providers) {
            String protocol = p.protocol().toLowerCase(Locale.ROOT);
            if (!protocol.equals(primaryProtocol) && !byProtocol.containsKey(protocol)) {
                TransportProvider b = best(config, providers, protocol, true);
                if (b != null) {
                    byProtocol.put(protocol, b);
                }
            }
        }
        out.addAll(byProtocol.values());
        return out;
    }

    /** The available provider of {@code protocol} with the highest priority (ties: class name), or null. */
    private static TransportProvider best(EngineConfig config, List<TransportProvider> providers, String protocol, boolean autoOnly) {
        return providers.stream()
                .filter(p -> p.protocol().toLowerCase(Locale.ROOT).equals(protocol) && usable(p, config, autoOnly))
                .max(PRIORITY)
                .orElse(null);
    }

    private static boolean has(List<TransportProvider> providers, String protocol) {
        return providers.stream().anyMatch(p -> p.protocol().toLowerCase(Locale.ROOT).equals(protocol));
    }

    /** Chooses the primary provider among the providers visible to ServiceLoader. */
    public static TransportProvider select(EngineConfig config) {
        return select(config, ProviderLoader.load(TransportProvider.class));
    }

    /** Chooses the primary provider among {@code providers}. */
    public static TransportProvider select(EngineConfig config, List<TransportProvider> providers) {
        String wanted = config.protocol();
        if (wanted != null) {
            for (TransportProvider p : providers) {
                if (p.protocol().toLowerCase(Locale.ROOT).equals(wanted)) {
                    if (safeCause(p, config) == null) {
                        return p;
                    }
                    throw new MooncakeException(
                            ErrorCode.TRANSPORT_UNAVAILABLE,
                            "protocol '" + wanted + "' (" + config.sourceOf(EngineConfig.PROTOCOL)
                                    + ") is not available here: " + describeAll(config, providers));
                }
            }
            throw new MooncakeException(
                    ErrorCode.TRANSPORT_UNAVAILABLE,
                    "unknown protocol '" + wanted + "' (" + config.sourceOf(EngineConfig.PROTOCOL)
                            + "); known: " + describeAll(config, providers)
                            + ". Put the plugin jar on the classpath or set MOONCAKE_PROTOCOL to a known one");
        }
        return providers.stream()
                .filter(p -> usable(p, config, true))
                .max(PRIORITY)
                .orElseThrow(() -> new MooncakeException(
                        ErrorCode.TRANSPORT_UNAVAILABLE,
                        "no transport available: " + describeAll(config, providers)
                                + ". Add mooncake4j-plugin-tcp to the classpath"));
    }

    /** One line per provider: its protocol and whether (or why not) it is available to an engine with {@code config}. */
    public static String describeAll(EngineConfig config, List<TransportProvider> providers) {
        if (providers.isEmpty()) {
            return "no transport plugins found on the classpath";
        }
        StringBuilder sb = new StringBuilder();
        for (TransportProvider p : providers) {
            if (sb.length() > 0) {
                sb.append("; ");
            }
            sb.append(p.protocol()).append(" (").append(p.getClass().getName()).append(", ");
            Throwable cause = safeCause(p, config);
            if (cause == null) {
                sb.append("available, priority ").append(p.priority());
            } else {
                sb.append("unavailable: ").append(cause);
            }
            sb.append(')');
        }
        return sb.toString();
    }

    /** Whether {@code p} can serve an engine with {@code config}; with {@code autoOnly}, also unnamed. */
    private static boolean usable(TransportProvider p, EngineConfig config, boolean autoOnly) {
        return (!autoOnly || safeAutoSelectable(p, config)) && safeCause(p, config) == null;
    }

    /** Why {@code p} cannot serve an engine with {@code config}, or null; a provider that throws is unavailable. */
    private static Throwable safeCause(TransportProvider p, EngineConfig config) {
        try {
            return p.unavailabilityCause(config);
        } catch (RuntimeException | LinkageError e) {
            return e;
        }
    }

    private static boolean safeAutoSelectable(TransportProvider p, EngineConfig config) {
        try {
            return p.isAutoSelectable(config);
        } catch (RuntimeException | LinkageError e) {
            return false;
        }
    }
}
