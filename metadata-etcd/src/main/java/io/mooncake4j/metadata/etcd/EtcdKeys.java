package io.mooncake4j.metadata.etcd;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.metadata.SegmentDescriptor;
import java.net.InetSocketAddress;

/**
 * Mooncake's key layout and values: {@code mooncake/[<cluster>/]rpc_meta/<name>} holds {@code
 * {"ip_or_host_name", "rpc_port"}} (where the segment's handshake server listens) and {@code
 * mooncake/[<cluster>/]ram/<name>} its segment descriptor. As in Mooncake, a name that contains
 * {@code /} is a path under the prefix instead of under {@code ram/}.
 */
final class EtcdKeys {
    private final String prefix;

    EtcdKeys(String clusterId) {
        this.prefix = "mooncake/" + (clusterId == null ? "" : clusterId + "/");
    }

    String prefix() {
        return prefix;
    }

    String rpcMeta(String name) {
        return prefix + "rpc_meta/" + name;
    }

    String segment(String name) {
        return name.indexOf('/') < 0 ? prefix + "ram/" + name : prefix + name;
    }

    /** The {@code rpc_meta} value, as Mooncake writes it. */
    static String rpcMetaValue(InetSocketAddress rpc) {
        JsonObject o = new JsonObject();
        o.addProperty("ip_or_host_name", rpc.getHostString());
        o.addProperty("rpc_port", rpc.getPort());
        return o.toString();
    }

    /**
     * Reads an {@code rpc_meta} value into an unresolved address.
     *
     * @throws MooncakeException {@code METADATA} when it is not {@code {"ip_or_host_name", "rpc_port"}}
     */
    static InetSocketAddress parseRpcMeta(String key, String value) {
        try {
            JsonObject o = JsonParser.parseString(value).getAsJsonObject();
            JsonElement host = o.get("ip_or_host_name");
            JsonElement port = o.get("rpc_port");
            if (host != null && host.isJsonPrimitive() && port != null && port.isJsonPrimitive()) {
                String h = host.getAsString();
                long p = port.getAsLong();
                if (!h.isEmpty() && p >= 1 && p <= 65535) {
                    return InetSocketAddress.createUnresolved(h, (int) p);
                }
            }
        } catch (JsonParseException | IllegalStateException | NumberFormatException | UnsupportedOperationException e) {
            // reported below
        }
        throw new MooncakeException(ErrorCode.METADATA, "etcd key " + key + " holds " + abbreviate(value)
                + ", not {\"ip_or_host_name\": <host>, \"rpc_port\": <1-65535>}");
    }

    /**
     * Reads a descriptor value.
     *
     * @throws MooncakeException {@code METADATA} when it is not a usable descriptor
     */
    static SegmentDescriptor parseDescriptor(String key, String value) {
        JsonObject o;
        try {
            o = JsonParser.parseString(value).getAsJsonObject();
        } catch (JsonParseException | IllegalStateException e) {
            throw new MooncakeException(ErrorCode.METADATA, "etcd key " + key + " holds " + abbreviate(value)
                    + ", not a segment descriptor (JSON object)", e);
        }
        try {
            return SegmentDescriptor.fromJson(o);
        } catch (MooncakeException e) {
            throw new MooncakeException(ErrorCode.METADATA, "etcd key " + key + " holds an unusable segment descriptor: "
                    + e.getMessage(), e);
        }
    }

    private static String abbreviate(String s) {
        return s.length() <= 200 ? "'" + s + "'" : "'" + s.substring(0, 200) + "...' (" + s.length() + " chars)";
    }
}
