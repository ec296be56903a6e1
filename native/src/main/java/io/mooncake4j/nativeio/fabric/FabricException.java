package io.mooncake4j.nativeio.fabric;

/**
 * A libfabric call failed. Carries the call's name and libfabric's error number (positive, e.g.
 * {@code FI_ENOKEY} = 266) and its {@code fi_strerror} text in the message.
 */
public final class FabricException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int errno;

    FabricException(String call, int errno) {
        super(call + " failed: " + LibFabric.strerror(errno) + " (" + errno + ")");
        this.errno = errno;
    }

    /** libfabric's error number, positive. */
    public int errno() {
        return errno;
    }

    /** Throws for a negative libfabric return value; returns the value otherwise. */
    static long check(String call, long rc) {
        if (rc < 0) {
            throw new FabricException(call, (int) -rc);
        }
        return rc;
    }
}
