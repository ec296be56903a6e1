package io.mooncake4j.djl.kv;

/** Which half of a layer's cache: keys or values. */
public enum KvPart {
    /** The keys (RoPE applied). */
    KEY,
    /** The values. */
    VALUE;

    /** 0 for keys, 1 for values: the position of the part within a layer in the layout. */
    public int index() {
        return ordinal();
    }
}
