package io.mooncake4j.samples.cli;

import com.google.common.net.HostAndPort;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferEngine;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine.Option;

/**
 * The engine flags every tool shares, named as in Mooncake's {@code transfer_engine_bench}. Use as
 * a picocli {@code @Mixin}; each flag left out falls back to the Mooncake environment variable
 * users already know, then to the engine's default.
 */
public final class EngineOptions {
    /** The protocol when neither {@code --protocol} nor {@code MOONCAKE_PROTOCOL} names one. */
    public static final String DEFAULT_PROTOCOL = "tcp";

    @Option(names = "--protocol", paramLabel = "tcp|efa",
            description = "Transport protocol. Default: $MOONCAKE_PROTOCOL, else " + DEFAULT_PROTOCOL + ".")
    String protocol;

    @Option(names = "--metadata_server", paramLabel = "URI",
            description = "Metadata service: P2PHANDSHAKE (the segment name is the peer's host:port), etcd://host:port, ..."
                    + " Default: $MC_METADATA_SERVER, else P2PHANDSHAKE.")
    String metadataServer;

    @Option(names = "--local_server_name", paramLabel = "HOST[:PORT]",
            description = "Address this engine advertises, the host part of its segment name. With :PORT, the"
                    + " handshake server listens on that port (else a free one in MC_MIN_RPC_PORT..MC_MAX_RPC_PORT)."
                    + " Default: $MOONCAKE_LOCAL_HOSTNAME, else this host's address, so the printed segment name"
                    + " works from other hosts; use 127.0.0.1 to keep a loopback run on lo.")
    String localServerName;

    @Option(names = "--device_name", paramLabel = "NICS",
            description = "NICs to use, comma separated (efa). Default: $MOONCAKE_DEVICE, else all.")
    String deviceName;

    @Option(names = "--auto_discovery", arity = "0..1", paramLabel = "BOOL",
            description = "Let the engine pick the best available transport, ignoring --protocol. Default: false.")
    boolean autoDiscovery;

    /** The protocol the engine will be asked for, or null when auto discovery lets it choose. */
    public String protocol() {
        if (autoDiscovery) {
            return null;
        }
        if (protocol != null && !protocol.isBlank()) {
            return protocol.trim().toLowerCase(Locale.ROOT);
        }
        String env = EngineConfig.fromEnvironment().protocol();
        return env != null ? env : DEFAULT_PROTOCOL;
    }

    /** Sets the protocol (as if given on the command line). */
    public EngineOptions protocol(String p) {
        this.protocol = p;
        return this;
    }

    /** Sets the advertised host (as if given on the command line). */
    public EngineOptions localServerName(String name) {
        this.localServerName = name;
        return this;
    }

    /** The engine settings: these flags over the environment. */
    public EngineConfig config() {
        return builder().build();
    }

    /** A builder holding these flags, for a tool that sets more. */
    public EngineConfig.Builder builder() {
        EngineConfig.Builder b = EngineConfig.builder();
        String p = protocol();
        // A protocol from the environment stays there, so that errors name where it came from.
        if (p != null && !p.equals(EngineConfig.fromEnvironment().protocol())) {
            b.protocol(p);
        }
        if (metadataServer != null && !metadataServer.isBlank()) {
            b.metadataServer(metadataServer.trim());
        }
        if (deviceName != null && !deviceName.isBlank()) {
            b.device(deviceName.trim());
        }
        if (localServerName != null && !localServerName.isBlank()) {
            HostPort hp;
            try {
                hp = HostPort.parse(localServerName.trim());
            } catch (IllegalArgumentException e) {
                throw new MooncakeException(ErrorCode.CONFIGURATION, "--local_server_name=" + e.getMessage());
            }
            b.localHostname(hp.host());
            if (hp.port() > 0) {
                b.rpcPortRange(hp.port(), hp.port());
            }
        }
        return b;
    }

    /** Starts an engine with these settings. */
    public TransferEngine createEngine() {
        return TransferEngine.create(config());
    }

    /** The arguments that give another process the same settings (for a spawned target). */
    public List<String> asArguments() {
        List<String> args = new ArrayList<>();
        if (autoDiscovery) {
            args.add("--auto_discovery");
        } else {
            args.add("--protocol=" + protocol());
        }
        if (metadataServer != null) {
            args.add("--metadata_server=" + metadataServer);
        }
        if (deviceName != null) {
            args.add("--device_name=" + deviceName);
        }
        return args;
    }

    /**
     * A {@code host[:port]} value: {@code 10.0.0.2}, {@code 10.0.0.2:15123}, {@code [fe80::1]:15123}
     * or a bare IPv6 literal.
     */
    public record HostPort(String host, int port) {
        /** Parses a host with an optional port; port 0 means none was given. */
        public static HostPort parse(String s) {
            HostAndPort hp;
            try {
                hp = HostAndPort.fromString(s);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("'" + s + "': " + e.getMessage(), e);
            }
            if (hp.getHost().isEmpty()) {
                throw new IllegalArgumentException("'" + s + "': the host is missing");
            }
            int port = hp.getPortOrDefault(0);
            if (hp.hasPort() && (port < 1 || port > 65535)) {
                throw new IllegalArgumentException("'" + s + "': the port must be 1..65535");
            }
            return new HostPort(hp.getHost(), port);
        }
    }
}
