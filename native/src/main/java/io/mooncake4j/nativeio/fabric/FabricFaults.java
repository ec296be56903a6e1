package io.mooncake4j.nativeio.fabric;

/**
 * The fault-injecting seam at the JNI boundary, for tests of branches that no software provider can
 * be asked for. Process-wide; always {@link #clear()} after use. Not for production use.
 */
public final class FabricFaults {
    private FabricFaults() {}

    /** The {@code n}-th registration from now (1 = the next) fails with libfabric error {@code errno}. */
    public static void failRegistration(int n, int errno) {
        LibFabric.ensureAvailable();
        FabricNatives.setFault0(n, errno, 0, false, false, false);
    }

    /**
     * NICs opened from now behave as if the provider also required {@code mrModeBits}: with {@code
     * FI_MR_PROV_KEY} keys are chosen natively (from 2^20 up) whatever the caller asked for; with
     * {@code FI_MR_ENDPOINT} regions are bound to the endpoint and enabled.
     */
    public static void addMrMode(long mrModeBits) {
        LibFabric.ensureAvailable();
        FabricNatives.setFault0(0, 0, mrModeBits, false, false, false);
    }

    /**
     * Every post from now is refused with {@code -FI_EAGAIN}, as for a peer whose connection never
     * drains (rxm keeps reconnecting to a dead peer), until {@link #clear()}.
     */
    public static void refusePosts() {
        LibFabric.ensureAvailable();
        FabricNatives.setFault0(0, 0, 0, true, false, false);
    }

    /**
     * A reset endpoint ({@link FabricNic#resetEndpoint}) takes a new address instead of asking for its
     * old one, as on EFA (a new queue pair), until {@link #clear()}.
     */
    public static void newAddressOnReset() {
        LibFabric.ensureAvailable();
        FabricNatives.setFault0(0, 0, 0, false, true, false);
    }

    /**
     * NICs report {@code FI_HMEM} in their capabilities, and device memory (any {@code iface}) is
     * registered as host memory, for device "memory" that is host memory (the test kit's {@code
     * FakeGpu}); {@link #lastRegistrationIface()} and {@link #lastRegistrationDevice()} say what was
     * asked for. Until {@link #clear()}.
     */
    public static void pretendHmem() {
        LibFabric.ensureAvailable();
        FabricNatives.setFault0(0, 0, 0, false, false, true);
    }

    /** The {@code fi_hmem_iface} of the last registration asked for in this process, or -1. */
    public static int lastRegistrationIface() {
        long v = FabricNatives.lastRegattr0();
        return v < 0 ? -1 : (int) (v >>> 32);
    }

    /** The device ordinal of the last registration asked for in this process, or -1. */
    public static int lastRegistrationDevice() {
        long v = FabricNatives.lastRegattr0();
        return v < 0 ? -1 : (int) v;
    }

    /** Removes every fault. */
    public static void clear() {
        if (LibFabric.isAvailable()) {
            FabricNatives.setFault0(0, 0, 0, false, false, false);
        }
    }
}
