package io.mooncake4j.transport.tcp;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Frames of Mooncake's TCP data protocol, encoded and decoded at absolute indexes of a buffer so
 * that nothing is allocated per request.
 *
 * <pre>
 * request header (24 bytes): u64 size LE | u64 addr LE | u8 opcode | 7 zero bytes
 *   opcode: READ=0, WRITE=1; bit 0x80 set = protocol v2 (the target answers with status frames)
 * status frame (8 bytes, v2 only): u64 LE, high 32 bits "MCTV" (0x4D435456), low 32 bits the code
 * </pre>
 *
 * WRITE sends the header then {@code size} bytes; a v2 target answers a status frame once the bytes
 * are in memory. READ sends the header; the target answers (v2: a status frame first) then {@code
 * size} bytes, or (v2) only a non-OK status frame.
 */
final class TcpWire {
    /** Bytes in a request header. */
    static final int HEADER_BYTES = 24;
    /** Bytes in a status frame. */
    static final int STATUS_BYTES = 8;
    /** Opcode of a READ (the initiator pulls target memory). */
    static final int OP_READ = 0;
    /** Opcode of a WRITE (the initiator pushes into target memory). */
    static final int OP_WRITE = 1;
    /** Opcode bit announcing protocol v2. */
    static final int FLAG_V2 = 0x80;
    /** "MCTV": the high 32 bits of every status frame. */
    static final int STATUS_MAGIC = 0x4D435456;
    /** Status code: the request was served. */
    static final int STATUS_OK = 0;
    /** Status code: the address range is not inside one registered buffer, or (GPU memory) the target could not stage it. */
    static final int STATUS_REJECTED = 1;
    /** The protocol version this implementation publishes in {@code tcp_proto_version}. */
    static final int PROTO_VERSION = 2;

    private TcpWire() {}

    /** Writes a request header at {@code index}; {@code opcode} is {@link #OP_READ} or {@link #OP_WRITE}. */
    static void putHeader(ByteBuffer b, int index, long size, long addr, int opcode, boolean v2) {
        putLongLE(b, index, size);
        putLongLE(b, index + 8, addr);
        // opcode byte then 7 zero bytes, as one little-endian long
        putLongLE(b, index + 16, (opcode & 0x7F) | (v2 ? FLAG_V2 : 0));
    }

    /** The {@code size} field of the header at {@code index} (unsigned). */
    static long headerSize(ByteBuffer b, int index) {
        return getLongLE(b, index);
    }

    /** The {@code addr} field of the header at {@code index}. */
    static long headerAddress(ByteBuffer b, int index) {
        return getLongLE(b, index + 8);
    }

    /** The raw opcode byte (0..255) of the header at {@code index}. */
    static int headerOpcode(ByteBuffer b, int index) {
        return b.get(index + 16) & 0xFF;
    }

    /** Whether a raw opcode byte asks for protocol v2. */
    static boolean isV2(int rawOpcode) {
        return (rawOpcode & FLAG_V2) != 0;
    }

    /** The opcode without the v2 flag. */
    static int baseOpcode(int rawOpcode) {
        return rawOpcode & 0x7F;
    }

    /** The status frame for {@code code} as the u64 value sent little-endian. */
    static long statusFrame(int code) {
        return ((long) STATUS_MAGIC << 32) | (code & 0xFFFFFFFFL);
    }

    /** Writes a status frame at {@code index}. */
    static void putStatus(ByteBuffer b, int index, int code) {
        putLongLE(b, index, statusFrame(code));
    }

    /** Whether {@code frame} carries the "MCTV" magic. */
    static boolean isStatusFrame(long frame) {
        return (int) (frame >>> 32) == STATUS_MAGIC;
    }

    /** The code of a status frame. */
    static int statusCode(long frame) {
        return (int) frame;
    }

    static long getLongLE(ByteBuffer b, int index) {
        long v = b.getLong(index);
        return b.order() == ByteOrder.LITTLE_ENDIAN ? v : Long.reverseBytes(v);
    }

    static void putLongLE(ByteBuffer b, int index, long v) {
        b.putLong(index, b.order() == ByteOrder.LITTLE_ENDIAN ? v : Long.reverseBytes(v));
    }
}
