package io.mooncake4j.metadata;

import com.google.gson.JsonObject;
import java.util.Objects;

/**
 * One registered buffer as a segment descriptor shows it to peers: Mooncake's {@code buffers[i]}
 * entry ({@code name} = location string, {@code addr}, {@code length}) plus transport fields such as
 * EFA's {@code rkey}/{@code lkey} arrays, kept verbatim in {@link #extra()}.
 */
public final class BufferDescriptor {
    private final String name;
    private final long address;
    private final long length;
    private final JsonObject extra;

    public BufferDescriptor(String name, long address, long length, JsonObject extra) {
        this.name = Objects.requireNonNull(name, "name");
        this.address = address;
        this.length = length;
        this.extra = extra == null ? new JsonObject() : extra;
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
}
