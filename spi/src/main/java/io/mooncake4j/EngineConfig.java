package io.mooncake4j;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * The engine's settings. Each setting has one key, Mooncake's environment variable name; its value
 * comes from, in order: an explicit {@link Builder#set} (or the typed builder methods), the
 * environment variable, the system property of the same name in lower case with dots ({@code
 * MC_TRANSFER_TIMEOUT} -> {@code mc.transfer.timeout}), then the default documented on the key.
 *
 * <p>Transport plugins read their own keys (e.g. {@code MC_EFA_CQ_THREADS}) through {@link #get}.
 */
public final class EngineConfig {
    /** Transport protocol: {@code tcp}, {@code efa}, ...; default: the best available. */
    public static final String PROTOCOL = "MOONCAKE_PROTOCOL";
    /**
     * Transports installed beside the primary one (whose protocol {@link #PROTOCOL} picks), to reach
     * peers that publish another protocol: a comma list of protocols, or {@code none}; default: every
     * available auto-selectable transport on the classpath.
     */
    public static final String INSTALLED_TRANSPORTS = "MC_INSTALLED_TRANSPORTS";
    /** Host name or IP this engine advertises; default: a non-loopback address of this host. */
    public static final String LOCAL_HOSTNAME = "MOONCAKE_LOCAL_HOSTNAME";
    /** Metadata service: {@code P2PHANDSHAKE} (default), {@code etcd://host:port}, ... */
    public static final String METADATA_SERVER = "MC_METADATA_SERVER";
    /** Mooncake's other name for {@link #METADATA_SERVER}. */
    public static final String METADATA_SERVER_ALIAS = "MOONCAKE_TE_META_DATA_SERVER";
    /** Devices (NICs) to use, comma separated; default: all. */
    public static final String DEVICE = "MOONCAKE_DEVICE";
    /** Deadline of each transfer in seconds (fractions allowed); default 30. */
    public static final String TRANSFER_TIMEOUT = "MC_TRANSFER_TIMEOUT";
    /** Lowest port for the handshake server; default 15000. */
    public static final String MIN_RPC_PORT = "MC_MIN_RPC_PORT";
    /** Highest port for the handshake server; default 17000. */
    public static final String MAX_RPC_PORT = "MC_MAX_RPC_PORT";
    /** Handshake connect (and per-read) timeout in seconds; default 5. */
    public static final String HANDSHAKE_CONNECT_TIMEOUT = "MC_HANDSHAKE_CONNECT_TIMEOUT";
    /** Largest handshake frame in bytes; default 1 MiB. */
    public static final String HANDSHAKE_MAX_LENGTH = "MC_HANDSHAKE_MAX_LENGTH";
    /** Seconds a new handshake connection may stay silent before its first byte; default 1. */
    public static final String HANDSHAKE_FIRST_FRAME_TIMEOUT = "MC_HANDSHAKE_FIRST_FRAME_TIMEOUT";
    /** Handshake connections open at once from one remote address; default 64. */
    public static final String HANDSHAKE_MAX_CONNECTIONS_PER_ADDRESS =
            "MC_HANDSHAKE_MAX_CONNECTIONS_PER_ADDRESS";
    /** Notifications received and not yet polled, at most; default 65536. */
    public static final String NOTIFY_MAX_PENDING = "MC_NOTIFY_MAX_PENDING";
    /** UTF-8 bytes of notifications received and not yet polled, at most; default 64 MiB. */
    public static final String NOTIFY_MAX_PENDING_BYTES = "MC_NOTIFY_MAX_PENDING_BYTES";
    /** Largest notification text accepted, in UTF-8 bytes; default 1 MiB (what a frame can hold). */
    public static final String NOTIFY_MAX_MESSAGE_SIZE = "MC_NOTIFY_MAX_MESSAGE_SIZE";
    /** TCP connections per peer; default 4. */
    public static final String TCP_LANES_PER_PEER = "MC_TCP_LANES_PER_PEER";
    /** Largest part a request is split into across lanes, in bytes; default 1 MiB. */
    public static final String SLICE_SIZE = "MC_SLICE_SIZE";
    /**
     * Local address the handshake server and the TCP data server listen on (an IP literal or a host
     * name); default: unset, every interface.
     */
    public static final String TCP_BIND_ADDRESS = "MC_TCP_BIND_ADDRESS";

    /**
     * Shared secret every peer must prove it holds (handshake, notifications, data connections);
     * default none: anyone who reaches the ports is served, as by Mooncake. See docs/security.md.
     */
    public static final String AUTH_TOKEN = "MC_AUTH_TOKEN";
    /** A file whose content is the shared secret (instead of {@link #AUTH_TOKEN}); default none. */
    public static final String AUTH_TOKEN_FILE = "MC_AUTH_TOKEN_FILE";

    /**
     * Whether GPU buffers move device to device through CUDA IPC to and from peers on this host
     * (published with {@code mc4j_cuda_ipc}); {@code 0} turns it off: nothing is exported, peers are
     * reached over their transport. Default {@code 1}.
     */
    public static final String CUDA_IPC = "MC_CUDA_IPC";
    /**
     * This host's identity, published as {@code mc4j_boot_id}: peers that publish the same value are
     * taken to be on this host. Default: {@code /proc/sys/kernel/random/boot_id}. Set it only to
     * test the other-host path, or to keep apart hosts that share a boot id.
     */
    public static final String BOOT_ID = "MC_BOOT_ID";

    private static final Map<String, String> DEFAULTS =
            Map.ofEntries(
                    Map.entry(METADATA_SERVER, "P2PHANDSHAKE"),
                    Map.entry(TRANSFER_TIMEOUT, "30"),
                    Map.entry(MIN_RPC_PORT, "15000"),
                    Map.entry(MAX_RPC_PORT, "17000"),
                    Map.entry(HANDSHAKE_CONNECT_TIMEOUT, "5"),
                    Map.entry(HANDSHAKE_MAX_LENGTH, Integer.toString(1 << 20)),
                    Map.entry(HANDSHAKE_FIRST_FRAME_TIMEOUT, "1"),
                    Map.entry(HANDSHAKE_MAX_CONNECTIONS_PER_ADDRESS, "64"),
                    Map.entry(NOTIFY_MAX_PENDING, "65536"),
                    Map.entry(NOTIFY_MAX_PENDING_BYTES, Integer.toString(64 << 20)),
                    Map.entry(NOTIFY_MAX_MESSAGE_SIZE, Integer.toString(1 << 20)),
                    Map.entry(TCP_LANES_PER_PEER, "4"),
                    Map.entry(SLICE_SIZE, Integer.toString(1 << 20)));

    private final Map<String, String> explicit;
    private final Map<String, String> environment;

    private EngineConfig(Builder b) {
        this.explicit = Map.copyOf(b.explicit);
        this.environment = b.environment;
    }

    /** A builder whose unset values come from the process environment and system properties. */
    public static Builder builder() {
        return new Builder();
    }

    /** Settings from the environment and system properties only. */
    public static EngineConfig fromEnvironment() {
        return builder().build();
    }

    /** The system property name for a key: lower case, underscores as dots. */
    public static String propertyName(String key) {
        return key.toLowerCase(Locale.ROOT).replace('_', '.');
    }

    /** A setting's value by the order in the class comment, or {@code fallback}. */
    public String get(String key, String fallback) {
        String v = explicit.get(key);
        if (v == null && key.equals(METADATA_SERVER)) {
            v = explicit.get(METADATA_SERVER_ALIAS);
        }
        if (v == null) {
            v = lookup(key);
        }
        if (v == null && key.equals(METADATA_SERVER)) {
            v = lookup(METADATA_SERVER_ALIAS);
        }
        if (v == null) {
            v = DEFAULTS.get(key);
        }
        return v == null || v.isBlank() ? fallback : v.trim();
    }

    /** A setting's value, or null. */
    public String get(String key) {
        return get(key, null);
    }

    /** Where a setting came from, for messages: "explicit", "environment", "system property", "default". */
    public String sourceOf(String key) {
        if (explicit.containsKey(key)) {
            return "explicit setting";
        }
        if (environment.get(key) != null) {
            return "environment variable " + key;
        }
        if (System.getProperty(propertyName(key)) != null) {
            return "system property " + propertyName(key);
        }
        return "default";
    }

    private String lookup(String key) {
        String v = environment.get(key);
        if (v == null || v.isBlank()) {
            v = System.getProperty(propertyName(key));
        }
        return v;
    }

    /** An integer setting, with a message naming the key when it does not parse or is out of range. */
    public long getLong(String key, long fallback, long min, long max) {
        String v = get(key);
        if (v == null) {
            return fallback;
        }
        long n;
        try {
            n = Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new MooncakeException(
                    ErrorCode.CONFIGURATION,
                    key + "='" + v + "' (" + sourceOf(key) + ") is not an integer");
        }
        if (n < min || n > max) {
            throw new MooncakeException(
                    ErrorCode.CONFIGURATION,
                    key + "=" + n + " (" + sourceOf(key) + ") must be between " + min + " and " + max);
        }
        return n;
    }

    /** A duration setting given in (possibly fractional) seconds. */
    public Duration getSeconds(String key, double fallbackSeconds) {
        String v = get(key);
        double s = fallbackSeconds;
        if (v != null) {
            try {
                s = Double.parseDouble(v);
            } catch (NumberFormatException e) {
                s = Double.NaN;
            }
            if (!(s > 0) || s > 1e6) {
                throw new MooncakeException(
                        ErrorCode.CONFIGURATION,
                        key + "='" + v + "' (" + sourceOf(key) + ") must be a positive number of seconds");
            }
        }
        return Duration.ofNanos((long) (s * 1e9));
    }

    /** The protocol, lower case, or null to pick the best available. */
    public String protocol() {
        String p = get(PROTOCOL);
        return p == null ? null : p.toLowerCase(Locale.ROOT);
    }

    /** The metadata service URI. */
    public String metadataServer() {
        return get(METADATA_SERVER);
    }

    /** The advertised host, or null to detect it. */
    public String localHostname() {
        return get(LOCAL_HOSTNAME);
    }

    /** The device list, or null for all. */
    public String device() {
        return get(DEVICE);
    }

    /**
     * The protocols to install beside the primary transport, lower case, in the order given: empty
     * for {@code none}, null when unset (install every available auto-selectable transport).
     *
     * @throws MooncakeException CONFIGURATION when the value is blank or has an empty entry
     */
    public List<String> installedTransports() {
        String v = get(INSTALLED_TRANSPORTS);
        if (v == null) {
            return null;
        }
        if (v.trim().equalsIgnoreCase("none")) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        for (String part : v.split(",", -1)) {
            String p = part.trim().toLowerCase(Locale.ROOT);
            if (p.isEmpty()) {
                throw new MooncakeException(
                        ErrorCode.CONFIGURATION,
                        INSTALLED_TRANSPORTS + "='" + v + "' (" + sourceOf(INSTALLED_TRANSPORTS)
                                + ") has an empty entry: give a comma list of protocols (e.g. tcp,efa) or none");
            }
            if (!out.contains(p)) {
                out.add(p);
            }
        }
        return List.copyOf(out);
    }

    /** The deadline of each transfer. */
    public Duration transferTimeout() {
        return getSeconds(TRANSFER_TIMEOUT, 30);
    }

    /** The handshake connect and read timeout. */
    public Duration handshakeTimeout() {
        return getSeconds(HANDSHAKE_CONNECT_TIMEOUT, 5);
    }

    public int minRpcPort() {
        return (int) getLong(MIN_RPC_PORT, 15000, 0, 65535);
    }

    public int maxRpcPort() {
        return (int) getLong(MAX_RPC_PORT, 17000, 0, 65535);
    }

    public int handshakeMaxLength() {
        return (int) getLong(HANDSHAKE_MAX_LENGTH, 1 << 20, 64, 64 << 20);
    }

    /** How long a new handshake connection may stay silent before its first byte. */
    public Duration handshakeFirstFrameTimeout() {
        return getSeconds(HANDSHAKE_FIRST_FRAME_TIMEOUT, 1);
    }

    public int handshakeMaxConnectionsPerAddress() {
        return (int) getLong(HANDSHAKE_MAX_CONNECTIONS_PER_ADDRESS, 64, 1, 65536);
    }

    public int notifyMaxPending() {
        return (int) getLong(NOTIFY_MAX_PENDING, 65536, 1, 1 << 24);
    }

    public long notifyMaxPendingBytes() {
        return getLong(NOTIFY_MAX_PENDING_BYTES, 64 << 20, 1, 1L << 40);
    }

    public int notifyMaxMessageSize() {
        return (int) getLong(NOTIFY_MAX_MESSAGE_SIZE, 1 << 20, 1, 64 << 20);
    }

    public int tcpLanesPerPeer() {
        return (int) getLong(TCP_LANES_PER_PEER, 4, 1, 64);
    }

    public long sliceSize() {
        return getLong(SLICE_SIZE, 1 << 20, 4096, 1L << 30);
    }

    /**
     * Whether CUDA IPC with peers on this host is on ({@link #CUDA_IPC}).
     *
     * @throws MooncakeException CONFIGURATION when the value is not 0, 1, false or true
     */
    public boolean cudaIpc() {
        String v = get(CUDA_IPC, "1").toLowerCase(Locale.ROOT);
        if (v.equals("1") || v.equals("true")) {
            return true;
        }
        if (v.equals("0") || v.equals("false")) {
            return false;
        }
        throw new MooncakeException(ErrorCode.CONFIGURATION,
                CUDA_IPC + "='" + v + "' (" + sourceOf(CUDA_IPC) + ") must be 1 (on) or 0 (off)");
    }

    /** The host identity to publish ({@link #BOOT_ID}), or null to read the kernel's boot id. */
    public String bootId() {
        return get(BOOT_ID);
    }

    /**
     * The address to listen on ({@link #TCP_BIND_ADDRESS}), or null to listen on every interface.
     *
     * @throws MooncakeException ({@code CONFIGURATION}) when the value does not resolve
     */
    public InetAddress tcpBindAddress() {
        String v = get(TCP_BIND_ADDRESS);
        if (v == null) {
            return null;
        }
        try {
            return InetAddress.getByName(v);
        } catch (UnknownHostException e) {
            throw new MooncakeException(
                    ErrorCode.CONFIGURATION,
                    TCP_BIND_ADDRESS + "='" + v + "' (" + sourceOf(TCP_BIND_ADDRESS)
                            + ") does not resolve: give a local IP address such as 127.0.0.1 or 10.0.0.5");
        }
    }

    /** Every explicit setting, for logging; the secret ({@link #AUTH_TOKEN}) shows as {@code ***}. */
    public Map<String, String> explicitSettings() {
        Map<String, String> m = new TreeMap<>(explicit);
        m.computeIfPresent(AUTH_TOKEN, (k, v) -> "***");
        return m;
    }

    @Override
    public String toString() {
        return "EngineConfig" + explicitSettings();
    }

    /** Builds an {@link EngineConfig}. Explicit settings win over the environment. */
    public static final class Builder {
        private final Map<String, String> explicit = new HashMap<>();
        private Map<String, String> environment = System.getenv();

        private Builder() {}

        /** Sets any key explicitly (null removes it). */
        public Builder set(String key, String value) {
            Objects.requireNonNull(key, "key");
            if (value == null) {
                explicit.remove(key);
            } else {
                explicit.put(key, value);
            }
            return this;
        }

        public Builder protocol(String protocol) {
            return set(PROTOCOL, protocol);
        }

        public Builder localHostname(String host) {
            return set(LOCAL_HOSTNAME, host);
        }

        public Builder metadataServer(String uri) {
            return set(METADATA_SERVER, uri);
        }

        public Builder device(String device) {
            return set(DEVICE, device);
        }

        public Builder transferTimeout(Duration timeout) {
            return set(TRANSFER_TIMEOUT, Double.toString(timeout.toNanos() / 1e9));
        }

        public Builder rpcPortRange(int min, int max) {
            return set(MIN_RPC_PORT, Integer.toString(min)).set(MAX_RPC_PORT, Integer.toString(max));
        }

        public Builder tcpLanesPerPeer(int lanes) {
            return set(TCP_LANES_PER_PEER, Integer.toString(lanes));
        }

        /** Replaces the process environment (tests; embedding). */
        public Builder environment(Map<String, String> env) {
            this.environment = Map.copyOf(env);
            return this;
        }

        public EngineConfig build() {
            return new EngineConfig(this);
        }
    }
}
