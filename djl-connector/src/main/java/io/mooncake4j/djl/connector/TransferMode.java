package io.mooncake4j.djl.connector;

import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.util.Locale;

/** Who moves the bytes: prefill WRITEs into decode's blocks (push), or decode READs prefill's (pull). */
public enum TransferMode {
    /** Prefill writes into the decode worker's blocks, then notifies it (Mooncake's vLLM connector). */
    PUSH,
    /** Decode reads the prefill worker's blocks, then tells it to free them. */
    PULL;

    /** The JSON name: {@code push} or {@code pull}. */
    public String jsonName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses {@code push} or {@code pull}, any case. */
    public static TransferMode parse(String s) {
        if (s != null) {
            for (TransferMode m : values()) {
                if (m.name().equalsIgnoreCase(s.trim())) {
                    return m;
                }
            }
        }
        throw new KvException(KvError.INVALID_PARAMS, "unknown transfer mode '" + s + "': use push or pull");
    }
}
