package io.mooncake4j.transport.efa;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.nativeio.fabric.FabricException;
import io.mooncake4j.nativeio.fabric.FabricInfo;
import io.mooncake4j.nativeio.fabric.LibFabric;
import io.mooncake4j.spi.DeviceMemoryProvider;
import io.mooncake4j.spi.DeviceMemoryProviders;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * GPU memory on the EFA transport. {@code FI_HMEM} (and {@code FI_MR_HMEM} among the {@code mr_mode}
 * hints) is asked of libfabric only when the engine has an available device memory provider ({@code
 * mooncake4j-gpu-cuda} with a GPU); a provider that does not offer it still serves host memory, and a
 * {@code cuda:N} region is then refused saying what to install. A {@code cuda:N} region is registered
 * with {@code iface = FI_HMEM_CUDA} and {@code device.cuda = N}, with the device's primary context
 * current on the registering thread (libfabric's CUDA support acts on the current context) and the
 * caller's restored afterwards.
 */
final class EfaDeviceMemory {
    private static final Logger log = LoggerFactory.getLogger(EfaDeviceMemory.class);

    private final DeviceMemoryProviders providers;
    private final String provider;
    private final boolean hmem;

    private EfaDeviceMemory(DeviceMemoryProviders providers, String provider, boolean hmem) {
        this.providers = providers;
        this.provider = provider;
        this.hmem = hmem;
    }

    /**
     * Runs {@code fi_getinfo} for {@code provider}: with {@code FI_HMEM} when a device memory provider
     * is available and libfabric offers it, else for host memory only.
     */
    static Opened query(String provider, DeviceMemoryProviders providers) {
        boolean wanted = providers.all().stream().anyMatch(DeviceMemoryProvider::isAvailable);
        if (wanted) {
            try {
                FabricInfo.Query q = FabricInfo.Query.run(provider, null,
                        EfaNic.MR_MODE_HINTS | LibFabric.FI_MR_HMEM, LibFabric.FI_HMEM);
                boolean all = q.infos().stream().allMatch(FabricInfo::supportsHmem);
                return new Opened(q, new EfaDeviceMemory(providers, provider, all));
            } catch (FabricException e) {
                log.info("EFA: libfabric provider '{}' ({}) offers no FI_HMEM ({}): GPU memory will be refused,"
                        + " host memory is served", provider, LibFabric.path(), e.getMessage());
            }
        }
        FabricInfo.Query q = FabricInfo.Query.run(provider, null, EfaNic.MR_MODE_HINTS);
        return new Opened(q, new EfaDeviceMemory(providers, provider, false));
    }

    /** An open {@code fi_getinfo} result and what it allows for device memory. */
    record Opened(FabricInfo.Query query, EfaDeviceMemory devices) {}

    /** Whether {@code cuda:N} regions can be registered. */
    boolean supportsHmem() {
        return hmem;
    }

    /**
     * Registers {@code region} on every NIC: host memory as it is, device memory in its device's
     * context.
     *
     * @throws MooncakeException REGISTRATION when the provider has no FI_HMEM (nothing is registered)
     */
    EfaRegistration register(MemoryRegion region, List<EfaNic> nics) {
        if (!region.location().isCuda()) {
            return EfaRegistration.register(region, nics);
        }
        if (!hmem) {
            throw new MooncakeException(
                    ErrorCode.REGISTRATION,
                    "EFA: cannot register " + region + ": the libfabric provider '" + provider + "' ("
                            + LibFabric.path() + ") has no FI_HMEM (CUDA) support. Install AWS's libfabric"
                            + " (the EFA installer, built with CUDA) and set " + LibFabric.PATH_SETTING
                            + "=/opt/amazon/efa/lib/libfabric.so.1; host memory works as it is");
        }
        DeviceMemoryProvider device = providers.require(region.location());
        return device.inDeviceContext(region.location().index(), () -> EfaRegistration.register(region, nics));
    }
}
