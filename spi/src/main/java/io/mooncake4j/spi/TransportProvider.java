package io.mooncake4j.spi;

import io.mooncake4j.EngineConfig;

/**
 * A transport plugin, found at runtime with {@link java.util.ServiceLoader} through both the SPI's
 * classloader and the thread context classloader.
 *
 * <p>Checklist for an implementation:
 *
 * <ul>
 *   <li>a public no-argument constructor that does no heavy work;
 *   <li>a {@code META-INF/services/io.mooncake4j.spi.TransportProvider} file naming the class;
 *   <li>{@link #unavailabilityCause(EngineConfig)} never throws; compute what does not depend on
 *       the engine's settings once (native library loaded, device present) and keep the cause;
 *   <li>{@link #priority()} from 0 to 10, 5 by default, higher wins when no protocol is named;
 *   <li>{@link #create} may throw {@link io.mooncake4j.MooncakeException} if setup fails, and must
 *       release what it acquired before throwing.
 * </ul>
 */
public abstract class TransportProvider {
    /** The protocol name users pass in {@code MOONCAKE_PROTOCOL}, lower case (e.g. {@code tcp}). */
    public abstract String protocol();

    /**
     * Why this transport cannot run for an engine with {@code config} (its own settings, e.g. which
     * device or provider to use), or null when it can. Never throws.
     */
    public abstract Throwable unavailabilityCause(EngineConfig config);

    /** 0 to 10; 5 is the default. Among available providers the highest wins. */
    public int priority() {
        return 5;
    }

    /** Creates and starts a transport for one engine. */
    public abstract Transport create(TransportContext context);

    /**
     * Whether this provider may be chosen without being named: as the primary transport when no
     * protocol is set, or installed beside the primary one when {@code MC_INSTALLED_TRANSPORTS} is not
     * set. A test or fake provider says no: it is used only where a setting names it.
     */
    public boolean isAutoSelectable(EngineConfig config) {
        return true;
    }

    @Override
    public String toString() {
        return getClass().getName() + "[" + protocol() + ", priority " + priority() + "]";
    }

    /** Reads a provider-specific setting (convenience for implementations). */
    protected static String setting(EngineConfig config, String key, String fallback) {
        return config.get(key, fallback);
    }
}
