package io.mooncake4j.djl.serving;

import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.util.Locale;

/** What a served model does with requests' KV caches. */
public enum KvRole {
    /** Runs the prompt and hands its KV cache to a decode worker. */
    PREFILL,
    /** Receives a prompt's KV cache from a prefill worker and generates. */
    DECODE;

    /** Parses {@code prefill} or {@code decode}, any case. */
    public static KvRole parse(String s) {
        if (s != null) {
            for (KvRole r : values()) {
                if (r.name().equalsIgnoreCase(s.trim())) {
                    return r;
                }
            }
        }
        throw new KvException(KvError.INVALID_PARAMS,
                "role must be prefill or decode, got '" + s + "': set role (or option.role) in serving.properties");
    }

    /** The lower-case name used in JSON. */
    public String jsonName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
