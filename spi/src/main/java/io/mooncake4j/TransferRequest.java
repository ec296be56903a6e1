package io.mooncake4j;

import java.util.Objects;

/**
 * One one-sided transfer: move {@code length} bytes between local registered memory at {@code
 * localAddress} and the segment's memory at the absolute address {@code remoteAddress} (Mooncake's
 * {@code target_offset}: a buffer address from the segment's descriptor plus an offset).
 *
 * @param opcode READ (remote to local) or WRITE (local to remote)
 * @param localAddress the local address
 * @param segment the target segment, from {@link TransferEngine#openSegment}
 * @param remoteAddress the absolute address in the target process
 * @param length the number of bytes (positive)
 */
public record TransferRequest(
        Opcode opcode, long localAddress, Segment segment, long remoteAddress, long length) {
    public TransferRequest {
        Objects.requireNonNull(opcode, "opcode");
        Objects.requireNonNull(segment, "segment");
    }

    /** A READ of {@code length} bytes from the segment into local memory. */
    public static TransferRequest read(Segment segment, long localAddress, long remoteAddress, long length) {
        return new TransferRequest(Opcode.READ, localAddress, segment, remoteAddress, length);
    }

    /** A WRITE of {@code length} bytes from local memory into the segment. */
    public static TransferRequest write(Segment segment, long localAddress, long remoteAddress, long length) {
        return new TransferRequest(Opcode.WRITE, localAddress, segment, remoteAddress, length);
    }
}
