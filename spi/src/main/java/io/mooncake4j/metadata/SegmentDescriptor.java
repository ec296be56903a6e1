package io.mooncake4j.metadata;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * A segment's descriptor in Mooncake's JSON form: {@code name}, {@code protocol}, {@code buffers}
 * and transport fields ({@code tcp_data_port}, {@code tcp_proto_version}, {@code devices},
 * {@code priority_matrix}, ...). Immutable; unknown fields are kept in {@link #extra()} and written
 * back out, so a descriptor survives a round trip.
 */
public final class SegmentDescriptor {
    private final String name;
    private final String protocol;
    private final List<BufferDescriptor> buffers;
    private final JsonObject extra;
    // bufferContaining's index: buffers by start address, starts biased by Long.MIN_VALUE so that a
    // signed comparison orders them as unsigned addresses; null when buffers overlap (then a scan)
    private final long[] biasedStarts;
    private final BufferDescriptor[] byStart;

    public SegmentDescriptor(
            String name, String protocol, List<BufferDescriptor> buffers, JsonObject extra) {
        this.name = Objects.requireNonNull(name, "name");
        this.protocol = Objects.requireNonNull(protocol, "protocol");
        this.buffers = List.copyOf(buffers);
        this.extra = extra == null ? new JsonObject() : extra.deepCopy();
        BufferDescriptor[] sorted = this.buffers.toArray(new BufferDescriptor[0]);
        Arrays.sort(sorted, (a, b) -> Long.compareUnsigned(a.address(), b.address()));
        long[] starts = new long[sorted.length];
        boolean disjoint = true;
        for (int i = 0; i < sorted.length; i++) {
            starts[i] = sorted[i].address() ^ Long.MIN_VALUE;
            if (i > 0 && !endsBefore(sorted[i - 1], sorted[i].address())) {
                disjoint = false;
            }
        }
        this.byStart = disjoint ? sorted : null;
        this.biasedStarts = disjoint ? starts : null;
    }

    /** Whether {@code b} ends at or before {@code address} (a zero-length or wrapping buffer never does). */
    private static boolean endsBefore(BufferDescriptor b, long address) {
        long end = b.address() + b.length();
        return b.length() > 0
                && Long.compareUnsigned(end, b.address()) > 0
                && Long.compareUnsigned(end, address) <= 0;
    }

    public String name() {
        return name;
    }

    public String protocol() {
        return protocol;
    }

    /** The buffers in registration order. */
    public List<BufferDescriptor> buffers() {
        return buffers;
    }

    /** Every top-level field other than name, protocol and buffers; a copy. */
    public JsonObject extra() {
        return extra.deepCopy();
    }

    /** An integer transport field such as {@code tcp_data_port}, or {@code fallback} if absent. */
    public long longField(String field, long fallback) {
        JsonElement e = extra.get(field);
        if (e == null || e.isJsonNull()) {
            return fallback;
        }
        try {
            return e.getAsLong();
        } catch (RuntimeException ex) {
            throw invalid("field '" + field + "' is not an integer: " + e);
        }
    }

    /** A raw transport field, or null. */
    public JsonElement field(String field) {
        JsonElement e = extra.get(field);
        return e == null ? null : e.deepCopy();
    }

    /**
     * The buffer wholly containing {@code [addr, addr + len)}, or null. Called for every remote
     * request: a binary search over the buffers by address (a peer may show thousands, one per KV
     * layer tensor); allocates nothing.
     */
    public BufferDescriptor bufferContaining(long addr, long len) {
        long[] starts = biasedStarts;
        if (starts == null) {
            for (BufferDescriptor b : buffers) { // overlapping buffers: the first that contains it
                if (b.contains(addr, len)) {
                    return b;
                }
            }
            return null;
        }
        // the last buffer starting at or before addr is the only one that can contain the range
        long key = addr ^ Long.MIN_VALUE;
        if (starts.length <= 4) { // a scan beats the search for a handful (most peers show one)
            for (int i = starts.length - 1; i >= 0; i--) {
                if (starts[i] <= key) {
                    BufferDescriptor b = byStart[i];
                    return b.contains(addr, len) ? b : null;
                }
            }
            return null;
        }
        int lo = 0;
        int hi = starts.length - 1;
        int found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (starts[mid] <= key) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        if (found < 0) {
            return null;
        }
        BufferDescriptor b = byStart[found];
        return b.contains(addr, len) ? b : null;
    }

    /** Mooncake's compact JSON. */
    public JsonObject toJson() {
        JsonObject o = new JsonObject();
        o.addProperty("name", name);
        o.addProperty("protocol", protocol);
        for (var e : extra.entrySet()) {
            o.add(e.getKey(), e.getValue().deepCopy());
        }
        JsonArray arr = new JsonArray();
        for (BufferDescriptor b : buffers) {
            JsonObject bo = new JsonObject();
            bo.addProperty("name", b.name());
            bo.add("addr", new JsonPrimitive(new BigInteger(Long.toUnsignedString(b.address()))));
            bo.addProperty("length", b.length());
            for (var e : b.extra().entrySet()) {
                bo.add(e.getKey(), e.getValue().deepCopy());
            }
            arr.add(bo);
        }
        o.add("buffers", arr);
        return o;
    }

    @Override
    public String toString() {
        return toJson().toString();
    }

    /** Parses a descriptor, rejecting a missing name, bad buffers or wrong types with a clear message. */
    public static SegmentDescriptor parse(String json) {
        JsonElement root;
        try {
            root = JsonParser.parseString(json);
        } catch (JsonParseException e) {
            throw new MooncakeException(ErrorCode.METADATA, "segment descriptor is not valid JSON: " + e.getMessage(), e);
        }
        if (!root.isJsonObject()) {
            throw invalid("segment descriptor must be a JSON object, got " + abbreviate(json));
        }
        return fromJson(root.getAsJsonObject());
    }

    /** Builds a descriptor from its JSON object. */
    public static SegmentDescriptor fromJson(JsonObject o) {
        String name = string(o, "name");
        String protocol = o.has("protocol") ? string(o, "protocol") : "tcp";
        List<BufferDescriptor> buffers = new ArrayList<>();
        JsonElement arr = o.get("buffers");
        if (arr != null && !arr.isJsonNull()) {
            if (!arr.isJsonArray()) {
                throw invalid("'buffers' must be an array");
            }
            for (JsonElement e : arr.getAsJsonArray()) {
                if (!e.isJsonObject()) {
                    throw invalid("each buffer must be an object, got " + e);
                }
                JsonObject bo = e.getAsJsonObject();
                String bname = string(bo, "name");
                long addr = unsigned(bo, "addr");
                long length = unsigned(bo, "length");
                if (bname.isEmpty() || addr == 0 || length <= 0) {
                    throw invalid("buffer needs a non-empty name, a non-zero addr and a length from 1 to 2^63-1: " + bo);
                }
                JsonObject extra = bo.deepCopy();
                extra.remove("name");
                extra.remove("addr");
                extra.remove("length");
                buffers.add(new BufferDescriptor(bname, addr, length, extra));
            }
        }
        JsonObject extra = o.deepCopy();
        extra.remove("name");
        extra.remove("protocol");
        extra.remove("buffers");
        return new SegmentDescriptor(name, protocol, Collections.unmodifiableList(buffers), extra);
    }

    private static String string(JsonObject o, String field) {
        JsonElement e = o.get(field);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
            throw invalid("field '" + field + "' must be a string in " + abbreviate(o.toString()));
        }
        return e.getAsString();
    }

    private static long unsigned(JsonObject o, String field) {
        JsonElement e = o.get(field);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            throw invalid("field '" + field + "' must be a number in " + abbreviate(o.toString()));
        }
        try {
            return Long.parseUnsignedLong(e.getAsJsonPrimitive().getAsBigInteger().toString());
        } catch (NumberFormatException | ArithmeticException ex) {
            throw invalid("field '" + field + "' is not a u64: " + e);
        }
    }

    private static MooncakeException invalid(String message) {
        return new MooncakeException(ErrorCode.METADATA, "invalid segment descriptor: " + message);
    }

    private static String abbreviate(String s) {
        return s.length() <= 200 ? s : s.substring(0, 200) + "...";
    }
}
