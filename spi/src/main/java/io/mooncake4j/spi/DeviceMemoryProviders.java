package io.mooncake4j.spi;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * An immutable snapshot of {@link DeviceMemoryProvider}s in a deterministic order; the engine takes
 * one of those on the class path (the SPI's classloader and the thread context classloader) when it
 * starts.
 */
public final class DeviceMemoryProviders {
    /** What a user adds to get {@code cuda:N}; named in every refusal. */
    static final String CUDA_HINT =
            "add io.mooncake4j:mooncake4j-gpu-cuda with org.jcuda:jcuda:12.6.0 and"
                    + " org.jcuda:jcuda-natives:12.6.0:linux-x86_64 to the class path, and run where"
                    + " the NVIDIA driver (libcuda.so.1) and a GPU are present";

    private final List<DeviceMemoryProvider> providers;

    /** A snapshot of exactly {@code providers} (tests, and hosts that assemble their own). */
    public DeviceMemoryProviders(List<DeviceMemoryProvider> providers) {
        List<DeviceMemoryProvider> sorted = new ArrayList<>(providers);
        sorted.sort(Comparator.comparing((DeviceMemoryProvider p) -> p.getClass().getName()));
        this.providers = List.copyOf(sorted);
    }

    /** Every provider found, available or not. */
    public List<DeviceMemoryProvider> all() {
        return providers;
    }

    /**
     * The available provider for {@code location}'s kind, whose devices include its index.
     *
     * @throws MooncakeException ({@link ErrorCode#REGISTRATION}) naming every provider of that kind
     *     and why it declined, and what to add
     */
    public DeviceMemoryProvider require(MemoryLocation location) {
        StringBuilder why = new StringBuilder();
        for (DeviceMemoryProvider p : providers) {
            if (!p.kind().equals(location.kind())) {
                continue;
            }
            if (!p.isAvailable()) {
                Throwable cause = p.unavailabilityCause();
                why.append("; ").append(p.getClass().getName()).append(" is unavailable: ")
                        .append(cause == null ? "no cause given" : cause.getMessage());
            } else if (location.index() >= p.deviceCount()) {
                why.append("; ").append(p.getClass().getName()).append(" sees ").append(p.deviceCount())
                        .append(" device(s), so ").append(location).append(" does not exist");
            } else {
                return p;
            }
        }
        String found = why.length() == 0 ? "; no provider of '" + location.kind() + "' memory is on the class path" : why.toString();
        throw new MooncakeException(
                ErrorCode.REGISTRATION,
                "memory location " + location + " cannot be used" + found + ": " + CUDA_HINT);
    }
}
