package io.mooncake4j.metadata;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.util.Objects;

/**
 * One registered buffer as a segment descriptor shows it to peers: Mooncake's {@code buffers[i]}
 * entry ({@code name} = location string, {@code addr}, {@code length}) plus transport fields such as
 * EFA's {@code rkey}/{@code lkey} arrays, kept verbatim in {@link #extra()}. The key arrays are
 * parsed once, here, into {@link #rkeys()} and {@link #lkeys()}, so that a transport reads them per
 * request without parsing or allocating.
 */
public final class BufferDescriptor {
    private static final long[] NO_KEYS = new long[0];

    private final String name;
    private final long address;
    private final long length;
    private final JsonObject extra;
    private final long[] rkeys;
    private final long[] lkeys;

    /**
     * A buffer with transport fields.
     *
     * @throws MooncakeException METADATA when {@code rkey} or {@code lkey} is present but not an
     *     array of unsigned 64-bit integers
     */
    public BufferDescriptor(String name, long address, long length, JsonObject extra) {
        this.name = Objects.requireNonNull(name, "name");
        this.address = address;
        this.length = length;
        this.extra = extra == null ? new JsonObject() : extra;
        this.rkeys = keys(this.extra, "rkey");
        this.lkeys = keys(this.extra, "lkey");
    }

    public BufferDescriptor(String name, long address, long length) {
        this(name, address, length, null);
    }

    /** The location string, e.g. {@code cpu:0} or {@code cuda:1}. */
    public String name() {
        return name;
    }

    /** The absolute address of the first byte in the owner's process. */
    public long address() {
        return address;
    }

    /** The length in bytes. */
    public long length() {
        return length;
    }

    /** Transport fields other than name, addr and length (e.g. {@code rkey}); never null. */
    public JsonObject extra() {
        return extra;
    }

    /**
     * The {@code rkey} array: one remote key per device of the owner's descriptor, in {@code devices}
     * order (0 = not registered on that device), as unsigned 64-bit values; empty when absent. The
     * array is shared: read it, never modify it.
     */
    public long[] rkeys() {
        return rkeys;
    }

    /** The {@code lkey} array, as {@link #rkeys()}; empty when absent. Shared: never modify it. */
    public long[] lkeys() {
        return lkeys;
    }

    /** Whether {@code [addr, addr + len)} lies wholly inside this buffer (len > 0, no overflow). */
    public boolean contains(long addr, long len) {
        return len > 0
                && Long.compareUnsigned(addr, address) >= 0
                && Long.compareUnsigned(addr + len, addr) > 0
                && Long.compareUnsigned(addr + len, address + length) <= 0;
    }

    @Override
    public String toString() {
        return "Buffer[" + name + " 0x" + Long.toHexString(address) + " +" + length + "]";
    }

    private static long[] keys(JsonObject extra, String field) {
        JsonElement e = extra.get(field);
        if (e == null || e.isJsonNull()) {
            return NO_KEYS;
        }
        if (!e.isJsonArray()) {
            throw new MooncakeException(
                    ErrorCode.METADATA, "invalid segment descriptor: buffer field '" + field + "' must be an array of keys, got " + e);
        }
        JsonArray a = e.getAsJsonArray();
        long[] out = new long[a.size()];
        for (int i = 0; i < out.length; i++) {
            JsonElement k = a.get(i);
            try {
                if (!k.isJsonPrimitive() || !k.getAsJsonPrimitive().isNumber()) {
                    throw new NumberFormatException("not a number");
                }
                out[i] = Long.parseUnsignedLong(k.getAsJsonPrimitive().getAsBigInteger().toString());
            } catch (NumberFormatException | ArithmeticException ex) {
                throw new MooncakeException(
                        ErrorCode.METADATA,
                        "invalid segment descriptor: buffer field '" + field + "' entry " + i + " is not a u64 key: " + k);
            }
        }
        return out;
    }
}
