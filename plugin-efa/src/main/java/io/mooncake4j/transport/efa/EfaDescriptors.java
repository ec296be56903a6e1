package io.mooncake4j.transport.efa;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.mooncake4j.metadata.SegmentDescriptor;
import java.util.ArrayList;
import java.util.List;

/**
 * Mooncake's EFA descriptor fields: {@code devices: [{"name", "lid": 0, "gid": <hex of the
 * endpoint address>}]}, per-buffer {@code rkey}/{@code lkey} arrays in {@code devices} order, and
 * {@code priority_matrix: {"<location>": [[preferred NICs], [available NICs]]}}.
 */
final class EfaDescriptors {
    private EfaDescriptors() {}

    /** Adds {@code devices} and {@code priority_matrix} for {@code nics}. */
    static void describe(JsonObject descriptor, List<EfaNic> nics) {
        JsonArray devices = new JsonArray();
        JsonArray names = new JsonArray();
        for (EfaNic nic : nics) {
            JsonObject d = new JsonObject();
            d.addProperty("name", nic.name);
            d.addProperty("lid", 0);
            d.addProperty("gid", nic.addressHex);
            devices.add(d);
            names.add(nic.name);
        }
        JsonArray entry = new JsonArray();
        entry.add(names);
        entry.add(new JsonArray());
        JsonObject matrix = new JsonObject();
        matrix.add("cpu:0", entry);
        descriptor.add("devices", devices);
        descriptor.add("priority_matrix", matrix);
    }

    /** One field ({@code name} or {@code gid}) of every entry of the peer's {@code devices}. */
    static List<String> devices(SegmentDescriptor descriptor, String field) {
        JsonElement devices = descriptor.field("devices");
        List<String> out = new ArrayList<>();
        if (devices != null && devices.isJsonArray()) {
            for (JsonElement d : devices.getAsJsonArray()) {
                JsonElement v = d.isJsonObject() ? d.getAsJsonObject().get(field) : null;
                out.add(v == null || v.isJsonNull() ? "" : v.getAsString());
            }
        }
        return out;
    }
}
