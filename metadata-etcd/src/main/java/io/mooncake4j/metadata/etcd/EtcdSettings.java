package io.mooncake4j.metadata.etcd;

import com.google.common.net.HostAndPort;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The etcd store's settings, read once through {@link EngineConfig} (explicit setting, environment
 * variable, system property, default), and its endpoints parsed from {@code MC_METADATA_SERVER}.
 * The keys are documented with their defaults in {@code docs/configuration.md}.
 */
public final class EtcdSettings {
    /** Key prefix {@code mooncake/<id>/} instead of {@code mooncake/}; default none (Mooncake's name). */
    public static final String CLUSTER_ID = "MC_METADATA_CLUSTER_ID";
    /** This engine's segment name in the store; default {@code <host>:<rpc port>}. */
    public static final String LOCAL_SERVER_NAME = "MC_LOCAL_SERVER_NAME";
    /** Seconds this engine's entries outlive it when it dies without withdrawing them; default 10. */
    public static final String LEASE_TTL = "MC_ETCD_LEASE_TTL";
    /** Bound on each call to etcd, in seconds (fractions allowed); default 5. */
    public static final String TIMEOUT = "MC_ETCD_TIMEOUT";

    static final String SCHEME = "etcd://";
    static final int DEFAULT_PORT = 2379;

    final List<URI> endpoints;
    final String clusterId;
    final String localServerName;
    final long leaseTtlSeconds;
    final Duration timeout;

    private EtcdSettings(List<URI> endpoints, String clusterId, String localServerName, long ttl, Duration timeout) {
        this.endpoints = List.copyOf(endpoints);
        this.clusterId = clusterId;
        this.localServerName = localServerName;
        this.leaseTtlSeconds = ttl;
        this.timeout = timeout;
    }

    /**
     * Reads the settings.
     *
     * @throws MooncakeException {@code CONFIGURATION} naming the key and what to write instead
     */
    static EtcdSettings of(String uri, EngineConfig config) {
        String cluster = config.get(CLUSTER_ID);
        if (cluster != null) {
            cluster = stripSlashes(cluster);
            if (cluster.isEmpty()) {
                cluster = null;
            } else if (hasSpaceOrControl(cluster)) {
                throw new MooncakeException(ErrorCode.CONFIGURATION, CLUSTER_ID + "='" + cluster + "' ("
                        + config.sourceOf(CLUSTER_ID) + ") must not contain spaces or control characters");
            }
        }
        String name = config.get(LOCAL_SERVER_NAME);
        if (name != null) {
            checkSegmentName(name);
        }
        return new EtcdSettings(
                parseEndpoints(uri),
                cluster,
                name,
                config.getLong(LEASE_TTL, 10, 1, 86_400),
                config.getSeconds(TIMEOUT, 5));
    }

    /**
     * The endpoints of {@code etcd://host:port[,host:port...]} as {@code http://host:port} URIs. A
     * value without a scheme is read the same way, as Mooncake does; a missing port means 2379.
     *
     * @throws MooncakeException {@code CONFIGURATION} with the expected form
     */
    static List<URI> parseEndpoints(String uri) {
        String s = uri == null ? "" : uri.trim();
        if (s.toLowerCase(Locale.ROOT).startsWith(SCHEME)) {
            s = s.substring(SCHEME.length());
        } else if (s.contains("://")) {
            throw badUri(uri, "the scheme must be etcd://");
        }
        List<URI> out = new ArrayList<>();
        for (String part : s.split(",", -1)) {
            String p = stripSlashes(part.trim());
            if (p.isEmpty() || hasSpaceOrControl(p) || p.contains("/")) {
                throw badUri(uri, "'" + part.trim() + "' is not host:port");
            }
            HostAndPort hp;
            try {
                hp = HostAndPort.fromString(p).withDefaultPort(DEFAULT_PORT);
            } catch (IllegalArgumentException e) {
                throw badUri(uri, "'" + p + "' is not host:port (" + e.getMessage() + ")");
            }
            if (hp.getHost().isEmpty() || hp.getPort() < 1) {
                throw badUri(uri, "'" + p + "' is not host:port");
            }
            out.add(URI.create("http://" + HostAndPort.fromParts(hp.getHost(), hp.getPort())));
        }
        return out;
    }

    /**
     * Checks a segment name: non-empty, no spaces or control characters.
     *
     * @throws MooncakeException {@code INVALID_ARGUMENT}
     */
    static String checkSegmentName(String name) {
        if (name == null || name.isEmpty() || hasSpaceOrControl(name)) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "'" + name + "' is not a segment name: it must be"
                    + " non-empty, without spaces or control characters (e.g. 10.0.0.5:15123 or 10.0.0.5)");
        }
        return name;
    }

    private static MooncakeException badUri(String uri, String why) {
        return new MooncakeException(ErrorCode.CONFIGURATION, "MC_METADATA_SERVER='" + uri + "': " + why
                + "; expected etcd://host:port[,host:port...], e.g. etcd://10.0.0.1:2379,10.0.0.2:2379");
    }

    private static String stripSlashes(String s) {
        int start = 0;
        int end = s.length();
        while (start < end && s.charAt(start) == '/') {
            start++;
        }
        while (end > start && s.charAt(end - 1) == '/') {
            end--;
        }
        return s.substring(start, end);
    }

    private static boolean hasSpaceOrControl(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c <= ' ' || c == 0x7F || Character.isWhitespace(c)) {
                return true;
            }
        }
        return false;
    }

    @Override
    public String toString() {
        return "EtcdSettings" + endpoints + "[cluster " + clusterId + ", ttl " + leaseTtlSeconds + " s, timeout "
                + timeout.toMillis() + " ms]";
    }
}
