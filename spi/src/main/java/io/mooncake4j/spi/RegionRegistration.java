package io.mooncake4j.spi;

import com.google.gson.JsonObject;

/**
 * What a transport made of one registered region: the fields it publishes with the buffer in the
 * local segment descriptor, and (the object itself) the transport's own handle for the region, e.g.
 * EFA's {@code fi_mr} pointers and descriptors per NIC.
 *
 * <p>The engine keeps the object returned by {@link Transport#registerRegion} for as long as the
 * region stays registered and hands it back, with no lookup and no allocation, through {@link
 * Submission#localRegistration(int)} for every request whose local memory lies in the region, and
 * finally to {@link Transport#unregisterRegion}. A transport casts it to its own class.
 *
 * <p>{@link #NONE} is the registration of a transport that keeps nothing per region (TCP).
 */
public interface RegionRegistration {
    /** A registration with no handle and no descriptor fields. */
    RegionRegistration NONE = JsonObject::new;

    /**
     * Per-buffer fields published with the region in the local descriptor's {@code buffers[i]} entry
     * (e.g. EFA's {@code rkey} and {@code lkey} arrays, one key per device). Called under the engine's
     * registration lock, once per registration; the engine merges the fields of every installed
     * transport into the one entry, so field names must not collide between transports. Must not
     * return null; return an empty object when there is nothing to publish.
     */
    JsonObject descriptorFields();
}
