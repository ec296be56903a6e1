package io.mooncake4j;

/** Direction of a one-sided transfer, with Mooncake's numeric values. */
public enum Opcode {
    /** Copy from the remote segment into local memory. */
    READ(0),
    /** Copy from local memory into the remote segment. */
    WRITE(1);

    private final int code;

    Opcode(int code) {
        this.code = code;
    }

    /** Mooncake's numeric value (READ=0, WRITE=1). */
    public int code() {
        return code;
    }

    /** The opcode for Mooncake's numeric value. */
    public static Opcode ofCode(int code) {
        return switch (code) {
            case 0 -> READ;
            case 1 -> WRITE;
            default -> throw new IllegalArgumentException("no opcode with code " + code);
        };
    }
}
