package io.mooncake4j.transport.tcp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class TcpWireTest {
    private static byte[] bytes(int... v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = (byte) v[i];
        }
        return b;
    }

    private static byte[] array(ByteBuffer b, int from, int len) {
        byte[] out = new byte[len];
        for (int i = 0; i < len; i++) {
            out[i] = b.get(from + i);
        }
        return out;
    }

    @Test
    void shouldEncodeV2WriteHeaderLittleEndian() {
        ByteBuffer b = ByteBuffer.allocate(32).order(ByteOrder.LITTLE_ENDIAN);
        TcpWire.putHeader(b, 4, 0x0102030405060708L, 0x1122334455667788L, TcpWire.OP_WRITE, true);
        assertArrayEquals(
                bytes(
                        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // size
                        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // addr
                        0x81, 0, 0, 0, 0, 0, 0, 0), // opcode WRITE | v2, padding
                array(b, 4, 24));
    }

    @Test
    void shouldEncodeV1ReadHeaderWhateverTheBufferOrder() {
        ByteBuffer b = ByteBuffer.allocate(24).order(ByteOrder.BIG_ENDIAN);
        TcpWire.putHeader(b, 0, 4096, 0x00007F0000001000L, TcpWire.OP_READ, false);
        assertArrayEquals(
                bytes(
                        0x00, 0x10, 0, 0, 0, 0, 0, 0, // 4096
                        0x00, 0x10, 0x00, 0x00, 0x00, 0x7F, 0x00, 0x00, // 0x7F0000001000
                        0x00, 0, 0, 0, 0, 0, 0, 0),
                array(b, 0, 24));
        assertEquals(4096, TcpWire.headerSize(b, 0));
        assertEquals(0x00007F0000001000L, TcpWire.headerAddress(b, 0));
        assertEquals(0, TcpWire.headerOpcode(b, 0));
    }

    @Test
    void shouldDecodeHeaderFields() {
        ByteBuffer b =
                ByteBuffer.wrap(
                                bytes(
                                        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x10, 0x32, 0x54,
                                        0x76, 0x98, 0xBA, 0xDC, 0xFE, 0x80, 0, 0, 0, 0, 0, 0, 0))
                        .order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(-1L, TcpWire.headerSize(b, 0)); // u64 max
        assertEquals(0xFEDCBA9876543210L, TcpWire.headerAddress(b, 0));
        int raw = TcpWire.headerOpcode(b, 0);
        assertEquals(0x80, raw);
        assertTrue(TcpWire.isV2(raw));
        assertEquals(TcpWire.OP_READ, TcpWire.baseOpcode(raw));
        assertFalse(TcpWire.isV2(0x01));
        assertEquals(TcpWire.OP_WRITE, TcpWire.baseOpcode(0x81));
    }

    @Test
    void shouldEncodeStatusFramesWithMagic() {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        TcpWire.putStatus(b, 0, TcpWire.STATUS_OK);
        TcpWire.putStatus(b, 8, TcpWire.STATUS_REJECTED);
        assertArrayEquals(bytes(0, 0, 0, 0, 0x56, 0x54, 0x43, 0x4D), array(b, 0, 8)); // "VTCM" LE
        assertArrayEquals(bytes(1, 0, 0, 0, 0x56, 0x54, 0x43, 0x4D), array(b, 8, 8));
        assertEquals(0x4D43545600000001L, TcpWire.statusFrame(1));
    }

    @Test
    void shouldDecodeStatusFrames() {
        long ok = TcpWire.getLongLE(ByteBuffer.wrap(bytes(0, 0, 0, 0, 0x56, 0x54, 0x43, 0x4D)), 0);
        assertTrue(TcpWire.isStatusFrame(ok));
        assertEquals(TcpWire.STATUS_OK, TcpWire.statusCode(ok));
        long rejected = TcpWire.statusFrame(TcpWire.STATUS_REJECTED);
        assertTrue(TcpWire.isStatusFrame(rejected));
        assertEquals(TcpWire.STATUS_REJECTED, TcpWire.statusCode(rejected));
        assertFalse(TcpWire.isStatusFrame(0x0000000000001000L)); // e.g. payload bytes
        assertFalse(TcpWire.isStatusFrame(0x4D43545500000000L));
    }
}
