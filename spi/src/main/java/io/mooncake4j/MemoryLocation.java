package io.mooncake4j;

import java.util.Locale;

/**
 * Where a memory region lives: {@code cpu:N} (host memory, NUMA node N), {@code cuda:N} (GPU N) or
 * {@code *} (let the engine detect it). The string form is Mooncake's location string.
 *
 * @param kind {@code "cpu"}, {@code "cuda"} or {@code "*"}
 * @param index the device or NUMA index, 0 for {@code *}
 */
public record MemoryLocation(String kind, int index) {
    /** Host memory on NUMA node 0. */
    public static final MemoryLocation CPU = new MemoryLocation("cpu", 0);
    /** Detect the location from the address. */
    public static final MemoryLocation ANY = new MemoryLocation("*", 0);

    public MemoryLocation {
        if (!kind.equals("cpu") && !kind.equals("cuda") && !kind.equals("*")) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "unknown memory location kind '" + kind + "': use cpu:N, cuda:N or *");
        }
        if (index < 0) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT, "memory location index must be >= 0: " + index);
        }
    }

    /** GPU memory on CUDA device {@code device}. */
    public static MemoryLocation cuda(int device) {
        return new MemoryLocation("cuda", device);
    }

    /** Host memory on NUMA node {@code node}. */
    public static MemoryLocation cpu(int node) {
        return new MemoryLocation("cpu", node);
    }

    /** Parses Mooncake's location string: {@code cpu:0}, {@code cuda:1}, {@code *}. */
    public static MemoryLocation parse(String text) {
        String s = text.trim().toLowerCase(Locale.ROOT);
        if (s.equals("*")) {
            return ANY;
        }
        int colon = s.indexOf(':');
        try {
            if (colon > 0) {
                return new MemoryLocation(s.substring(0, colon), Integer.parseInt(s.substring(colon + 1)));
            }
        } catch (NumberFormatException e) {
            // fall through to the error below
        }
        throw new MooncakeException(
                ErrorCode.INVALID_ARGUMENT,
                "cannot parse memory location '" + text + "': use cpu:N, cuda:N or *");
    }

    /** Whether this is GPU memory. */
    public boolean isCuda() {
        return kind.equals("cuda");
    }

    @Override
    public String toString() {
        return kind.equals("*") ? "*" : kind + ":" + index;
    }
}
