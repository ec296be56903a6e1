package io.mooncake4j.nativeio.fabric;

/**
 * The fault-injecting seam at the JNI boundary, for tests of branches that no software provider can
 * be asked for. Process-wide; faults add up until {@link #clear()}, which always follows use. Not for
 * production use.
 */
public final class FabricFaults {
    private static int registrationCountdown;
    private static int registrationErrno;
    private static long mrModeAdded;
    private static boolean postsRefused;
    private static boolean newAddress;
    private static boolean hmem;

    private FabricFaults() {}

    /**
     * Sets every fault as recorded here (the native seam takes them all at once). A registration
     * failure counts down natively, so setting another fault disarms it: arm it last.
     */
    private static synchronized void apply() {
        LibFabric.ensureAvailable();
        FabricNatives.setFault0(registrationCountdown, registrationErrno, mrModeAdded, postsRefused, newAddress, hmem);
    }

    /**
     * The {@code n}-th registration from now (1 = the next) fails with libfabric error {@code errno};
     * the other faults stay. Setting another fault afterwards disarms it.
     */
    public static synchronized void failRegistration(int n, int errno) {
        registrationCountdown = n;
        registrationErrno = errno;
        apply();
        registrationCountdown = 0; // counted down natively from here
        registrationErrno = 0;
    }

    /**
     * NICs opened from now behave as if the provider also required {@code mrModeBits}: with {@code
     * FI_MR_PROV_KEY} keys are chosen natively (from 2^20 up) whatever the caller asked for; with
     * {@code FI_MR_ENDPOINT} regions are bound to the endpoint and enabled.
     */
    public static synchronized void addMrMode(long mrModeBits) {
        mrModeAdded |= mrModeBits;
        apply();
    }

    /**
     * Every post from now is refused with {@code -FI_EAGAIN}, as for a peer whose connection never
     * drains (rxm keeps reconnecting to a dead peer), until {@link #clear()}.
     */
    public static synchronized void refusePosts() {
        postsRefused = true;
        apply();
    }

    /**
     * A reset endpoint ({@link FabricNic#resetEndpoint}) takes a new address instead of asking for its
     * old one, as on EFA (a new queue pair), until {@link #clear()}.
     */
    public static synchronized void newAddressOnReset() {
        newAddress = true;
        apply();
    }

    /**
     * NICs report {@code FI_HMEM} in their capabilities, and device memory (any {@code iface}) is
     * registered as host memory, for device "memory" that is host memory (the test kit's {@code
     * FakeGpu}); {@link #lastRegistrationIface()} and {@link #lastRegistrationDevice()} say what was
     * asked for. Until {@link #clear()}.
     */
    public static synchronized void pretendHmem() {
        hmem = true;
        apply();
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
    public static synchronized void clear() {
        registrationCountdown = 0;
        registrationErrno = 0;
        mrModeAdded = 0;
        postsRefused = false;
        newAddress = false;
        hmem = false;
        if (LibFabric.isAvailable()) {
            FabricNatives.setFault0(0, 0, 0, false, false, false);
        }
    }
}
