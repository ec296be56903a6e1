package io.mooncake4j.nativeio.fabric;

/**
 * The whole JNI surface of the libfabric binding, registered by the JNI library's {@code
 * JNI_OnLoad}. Kept apart from {@link LibFabric} and free of static state, because {@code
 * JNI_OnLoad} looks this class up (which initialises it) while the library is still loading. The
 * natives return negative libfabric error numbers and never throw.
 */
final class FabricNatives {
    private FabricNatives() {}

    static native String load0(String path);

    static native String strerror0(int errno);

    static native String lastStep0();

    static native long getinfo0(String provider, String node, long mrModeHints, long extraCaps);

    static native void freeinfo0(long info);

    static native long infoNext0(long info);

    static native String infoString0(long info, int field);

    static native long infoLong0(long info, int field);

    static native long nicOpen0(long info, int slots, int cqSize);

    static native int nicClose0(long nic);

    static native int epClose0(long nic);

    static native int epReopen0(long nic, byte[] oldAddress);

    static native byte[] nicName0(long nic);

    static native long nicLong0(long nic, int field);

    static native long avInsert0(long nic, byte[] address);

    static native long mrReg0(
            long nic, long address, long length, long key, int iface, int device, long[] out);

    static native int mrClose0(long mr);

    static native int mrRebind0(long nic, long mr);

    static native int post0(long nic, long opsAddress, int count);

    static native int reap0(long nic, long slotsAddress, int max);

    static native int wait0(long[] nics, int timeoutMillis);

    static native String readErr0(long nic, long[] out);

    static native int signal0(long nic);

    static native void setFault0(
            long mrRegCountdown, int mrRegErrno, long mrModeAdd, boolean postEagain, boolean newAddress,
            boolean hmem);

    static native long lastRegattr0();
}
