package io.mooncake4j.spi;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/**
 * What another process on the same host needs to map a registered device buffer (CUDA IPC): the
 * driver's opaque handle of the allocation holding the buffer, the buffer's offset from the
 * allocation's base, and the device it lives on, named so that it means the same device in every
 * process of the host (a PCI bus id, never an ordinal, which {@code CUDA_VISIBLE_DEVICES} changes).
 * Published per buffer as {@code mc4j_cuda_ipc} (see docs/wire-compatibility.md). Immutable.
 */
public final class DeviceIpcHandle {
    /** The size of a CUDA IPC memory handle ({@code CU_IPC_HANDLE_SIZE}). */
    public static final int HANDLE_BYTES = 64;
    /** The per-buffer descriptor field that carries it. */
    public static final String FIELD = "mc4j_cuda_ipc";

    private final byte[] handle;
    private final long offset;
    private final String device;

    /**
     * @param handle the driver's handle, {@value #HANDLE_BYTES} bytes (copied)
     * @param offset bytes from the allocation's base to the buffer's first byte, not negative
     * @param device the device's host-wide name, e.g. the PCI bus id {@code 0000:3b:00.0}
     * @throws MooncakeException INVALID_ARGUMENT when a part is missing or out of range
     */
    public DeviceIpcHandle(byte[] handle, long offset, String device) {
        if (handle == null || handle.length != HANDLE_BYTES) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "a CUDA IPC handle has " + HANDLE_BYTES
                    + " bytes, got " + (handle == null ? "none" : handle.length));
        }
        if (offset < 0) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "an IPC buffer offset must not be negative, got " + offset);
        }
        if (device == null || device.isBlank()) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "an IPC handle needs the device's PCI bus id or UUID");
        }
        this.handle = handle.clone();
        this.offset = offset;
        this.device = device;
    }

    /** The driver's handle (a copy). */
    public byte[] handle() {
        return handle.clone();
    }

    /** Bytes from the allocation's base to the buffer's first byte. */
    public long offset() {
        return offset;
    }

    /** The device's host-wide name (PCI bus id or UUID). */
    public String device() {
        return device;
    }

    /** {@code {"handle": <hex>, "offset": n, "device": "..."}}. */
    public JsonObject toJson() {
        JsonObject o = new JsonObject();
        o.addProperty("handle", HexFormat.of().formatHex(handle));
        o.addProperty("offset", offset);
        o.addProperty("device", device);
        return o;
    }

    /**
     * Parses the {@link #FIELD} of a peer's buffer.
     *
     * @throws MooncakeException METADATA naming what is wrong when it is not an object with a
     *     128-digit hex {@code handle}, a non-negative integer {@code offset} and a {@code device}
     */
    public static DeviceIpcHandle fromJson(JsonElement e) {
        if (e == null || !e.isJsonObject()) {
            throw invalid("must be an object, got " + e);
        }
        JsonObject o = e.getAsJsonObject();
        byte[] handle;
        long offset;
        try {
            handle = HexFormat.of().parseHex(o.get("handle").getAsString());
            offset = o.get("offset").getAsLong();
        } catch (RuntimeException ex) {
            throw invalid("needs a hex 'handle' and an integer 'offset': " + o);
        }
        JsonElement device = o.get("device");
        if (device == null || !device.isJsonPrimitive()) {
            throw invalid("needs a 'device' (PCI bus id or UUID): " + o);
        }
        try {
            return new DeviceIpcHandle(handle, offset, device.getAsString());
        } catch (MooncakeException ex) {
            throw invalid(ex.getMessage() + ": " + o);
        }
    }

    private static MooncakeException invalid(String what) {
        return new MooncakeException(ErrorCode.METADATA, "invalid segment descriptor: buffer field '" + FIELD + "' " + what);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DeviceIpcHandle h && offset == h.offset && device.equals(h.device) && Arrays.equals(handle, h.handle);
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.hashCode(handle), offset, device);
    }

    @Override
    public String toString() {
        return "DeviceIpcHandle[" + device + ", offset " + offset + "]";
    }
}
