package io.mooncake4j.transport.efa;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.nativeio.fabric.FabricException;
import io.mooncake4j.nativeio.fabric.FabricMemoryRegion;
import io.mooncake4j.nativeio.fabric.LibFabric;
import io.mooncake4j.spi.RegionRegistration;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One region registered on every NIC, honouring each provider's {@code mr_mode}: the local
 * descriptor ({@code fi_mr_desc}) is always passed with local memory (FI_MR_LOCAL); the key is read
 * back with {@code fi_mr_key} (FI_MR_PROV_KEY), else asked for from a per-domain counter; with
 * FI_MR_ENDPOINT the region is bound to the NIC's endpoint natively. Published as Mooncake's
 * per-buffer {@code rkey} and {@code lkey} arrays, one key per device in {@code devices} order.
 */
final class EfaRegistration implements RegionRegistration {
    private static final Logger log = LoggerFactory.getLogger(EfaRegistration.class);

    final MemoryRegion region;
    final long[] keys;
    final long[] descriptors;
    private final FabricMemoryRegion[] handles;

    private EfaRegistration(MemoryRegion region, FabricMemoryRegion[] handles) {
        this.region = region;
        this.handles = handles;
        this.keys = new long[handles.length];
        this.descriptors = new long[handles.length];
        for (int i = 0; i < handles.length; i++) {
            keys[i] = handles[i].key();
            descriptors[i] = handles[i].descriptor();
        }
    }

    /**
     * Registers {@code region} on every NIC; when one refuses, the NICs that accepted are rolled back
     * and nothing stays registered.
     *
     * @throws MooncakeException REGISTRATION naming the NIC and libfabric's error
     */
    static EfaRegistration register(MemoryRegion region, List<EfaNic> nics) {
        FabricMemoryRegion[] handles = new FabricMemoryRegion[nics.size()];
        int iface = region.location().isCuda() ? LibFabric.FI_HMEM_CUDA : LibFabric.FI_HMEM_SYSTEM;
        int device = region.location().isCuda() ? region.location().index() : 0;
        for (int i = 0; i < handles.length; i++) {
            EfaNic nic = nics.get(i);
            try {
                handles[i] = nic.fabric.register(
                        region.address(), region.length(), nic.nextRequestedKey(), iface, device);
            } catch (RuntimeException e) {
                for (int j = i - 1; j >= 0; j--) {
                    closeQuietly(handles[j], nics.get(j));
                }
                throw new MooncakeException(
                        ErrorCode.REGISTRATION,
                        "EFA: NIC " + nic + " refused " + region + ": " + e.getMessage()
                                + "; nothing was registered" + (iface == LibFabric.FI_HMEM_CUDA ? withoutCuda(e) : ""),
                        e);
            }
        }
        return new EfaRegistration(region, handles);
    }

    /**
     * What to do when a CUDA registration is not implemented: a libfabric built without CUDA may still
     * list {@code FI_HMEM} (Ubuntu's 1.17 shm does, then answers {@code FI_ENOSYS}).
     */
    private static String withoutCuda(RuntimeException e) {
        return e instanceof FabricException f && f.errno() == LibFabric.FI_ENOSYS
                ? ". This libfabric (" + LibFabric.path() + ") lists FI_HMEM but was built without CUDA: install AWS's"
                        + " libfabric (the EFA installer) and set " + LibFabric.PATH_SETTING
                        + "=/opt/amazon/efa/lib/libfabric.so.1"
                : "";
    }

    /** Mooncake's per-buffer fields: {@code rkey} and {@code lkey}, one per device. */
    @Override
    public JsonObject descriptorFields() {
        JsonArray rkey = new JsonArray();
        JsonArray lkey = new JsonArray();
        for (long k : keys) {
            rkey.add(k);
            lkey.add(k);
        }
        JsonObject o = new JsonObject();
        o.add("rkey", rkey);
        o.add("lkey", lkey);
        return o;
    }

    /** Binds this region to {@code nic}'s reopened endpoint ({@code FI_MR_ENDPOINT}); a refusal is logged. */
    void rebind(EfaNic nic) {
        try {
            nic.fabric.rebind(handles[nic.index]);
        } catch (RuntimeException e) {
            log.error("EFA: binding {} to the reopened endpoint of {} failed; peers' operations on it will fail: {}",
                    region, nic, e.getMessage());
        }
    }

    /** Closes the registration on every NIC; a refusal is logged and the others still close. */
    void close(List<EfaNic> nics) {
        for (int i = handles.length - 1; i >= 0; i--) {
            closeQuietly(handles[i], nics.get(i));
        }
    }

    private static void closeQuietly(FabricMemoryRegion h, EfaNic nic) {
        try {
            h.close();
        } catch (RuntimeException e) {
            log.warn("EFA: closing a registration on {} failed: {}", nic, e.getMessage());
        }
    }
}
