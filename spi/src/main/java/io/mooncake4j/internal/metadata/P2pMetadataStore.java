package io.mooncake4j.internal.metadata;

import com.google.common.net.HostAndPort;
import com.google.gson.JsonObject;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.internal.handshake.HandshakeFrame;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.spi.MetadataContext;
import io.mooncake4j.spi.MetadataStore;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The {@code P2PHANDSHAKE} store. A segment's name is its engine's handshake address, {@code
 * host:port} ({@code [v6]:port} for an IPv6 literal); {@link #fetch} sends that address a Metadata
 * request and the engine answers with its live descriptor, so there is nothing to publish and
 * nothing to withdraw.
 *
 * <p>The Metadata request carries the caller's last published descriptor (or {@code {}} before the
 * first publish), as Mooncake's does; Mooncake ignores it.
 */
public final class P2pMetadataStore implements MetadataStore {
    private final MetadataContext context;
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile SegmentDescriptor local;

    public P2pMetadataStore(MetadataContext context) {
        this.context = Objects.requireNonNull(context, "context");
    }

    @Override
    public String segmentName(String hostname, int rpcPort) {
        return formatName(hostname, rpcPort);
    }

    /** Remembers the descriptor to send with Metadata requests; nothing goes on the network. */
    @Override
    public void publish(SegmentDescriptor descriptor, InetSocketAddress rpcAddress) {
        ensureOpen();
        local = descriptor;
    }

    @Override
    public SegmentDescriptor fetch(String segmentName, Duration timeout) {
        ensureOpen();
        InetSocketAddress peer = rpcAddress(segmentName);
        Duration t = timeout != null ? timeout : context.config().handshakeTimeout();
        SegmentDescriptor self = local;
        JsonObject request = self == null ? new JsonObject() : self.toJson();
        JsonObject reply;
        try {
            reply = context.call(peer, HandshakeFrame.METADATA, request, t);
        } catch (MooncakeException e) {
            throw new MooncakeException(
                    e.code(), "cannot fetch segment '" + segmentName + "': " + messageOf(e), e);
        } catch (RuntimeException e) {
            throw new MooncakeException(
                    ErrorCode.METADATA, "cannot fetch segment '" + segmentName + "': " + e, e);
        }
        if (reply == null) {
            throw new MooncakeException(
                    ErrorCode.METADATA, "cannot fetch segment '" + segmentName + "': no reply");
        }
        try {
            return SegmentDescriptor.fromJson(reply);
        } catch (MooncakeException e) {
            throw new MooncakeException(
                    ErrorCode.METADATA,
                    "segment '"
                            + segmentName
                            + "' answered with an unusable descriptor: "
                            + messageOf(e),
                    e);
        }
    }

    /**
     * The segment's handshake address, resolved.
     *
     * @throws MooncakeException {@code INVALID_ARGUMENT} for a name that is not {@code host:port};
     *     {@code SEGMENT_NOT_FOUND} if the host does not resolve
     */
    @Override
    public InetSocketAddress rpcAddress(String segmentName) {
        InetSocketAddress unresolved = parseName(segmentName);
        InetSocketAddress a =
                new InetSocketAddress(unresolved.getHostString(), unresolved.getPort());
        if (a.isUnresolved()) {
            throw new MooncakeException(
                    ErrorCode.SEGMENT_NOT_FOUND,
                    "segment '"
                            + segmentName
                            + "': cannot resolve host '"
                            + unresolved.getHostString()
                            + "'; check DNS and /etc/hosts, or use an IP address");
        }
        return a;
    }

    @Override
    public void close() {
        closed.set(true);
    }

    @Override
    public String toString() {
        return "P2pMetadataStore" + (closed.get() ? "[closed]" : "");
    }

    /**
     * A P2P segment name: {@code host:port}, or {@code [host]:port} when the host is an IPv6
     * literal.
     *
     * @throws MooncakeException {@code INVALID_ARGUMENT} for an empty host or a port outside
     *     1-65535
     */
    public static String formatName(String host, int port) {
        if (host == null || host.isBlank() || containsSpaceOrControl(host)) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "a P2P segment name needs a host name or IP without spaces, got '"
                            + host
                            + "'");
        }
        if (port < 1 || port > 65535) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "a P2P segment name needs a port between 1 and 65535, got " + port);
        }
        boolean bracketed = host.startsWith("[") && host.endsWith("]");
        return HostAndPort.fromParts(bracketed ? host.substring(1, host.length() - 1) : host, port)
                .toString();
    }

    /**
     * Parses a P2P segment name into an unresolved address.
     *
     * @throws MooncakeException {@code INVALID_ARGUMENT} with the expected form when it is not
     *     {@code host:port} or {@code [v6]:port} with a port in 1-65535
     */
    public static InetSocketAddress parseName(String name) {
        if (name == null || name.isEmpty()) {
            throw badName(name, "it is empty");
        }
        if (containsSpaceOrControl(name)) {
            throw badName(name, "it contains spaces or control characters");
        }
        HostAndPort hp;
        try {
            hp = HostAndPort.fromString(name);
        } catch (IllegalArgumentException e) {
            throw badName(name, e.getMessage());
        }
        String host = hp.getHost();
        if (!hp.hasPort()) {
            throw badName(
                    name,
                    host.indexOf(':') >= 0
                            ? "an IPv6 address must be written in brackets"
                            : "the port is missing");
        }
        if (host.isEmpty()) {
            throw badName(name, "the host is missing");
        }
        if (host.indexOf('[') >= 0 || host.indexOf(']') >= 0) {
            throw badName(name, "stray bracket");
        }
        if (name.startsWith("[") && host.indexOf(':') < 0) {
            throw badName(name, "brackets are only for an IPv6 literal");
        }
        if (hp.getPort() < 1) {
            throw badName(name, "the port must be a number between 1 and 65535");
        }
        return InetSocketAddress.createUnresolved(host, hp.getPort());
    }

    private static boolean containsSpaceOrControl(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c <= ' ' || c == 0x7F || Character.isWhitespace(c)) {
                return true;
            }
        }
        return false;
    }

    private static MooncakeException badName(String name, String why) {
        return new MooncakeException(
                ErrorCode.INVALID_ARGUMENT,
                "'"
                        + name
                        + "' is not a P2PHANDSHAKE segment name ("
                        + why
                        + "): expected the peer's handshake address, host:port, e.g."
                        + " 10.0.0.5:15123 or [fd00::5]:15123");
    }

    /** The message without the "[CODE] " prefix, to nest it in another. */
    private static String messageOf(MooncakeException e) {
        String m = e.getMessage();
        String prefix = "[" + e.code() + "] ";
        return m != null && m.startsWith(prefix) ? m.substring(prefix.length()) : String.valueOf(m);
    }

    private void ensureOpen() {
        if (closed.get()) {
            throw new MooncakeException(
                    ErrorCode.CLOSED, "the P2PHANDSHAKE metadata store is closed");
        }
    }
}
