package io.mooncake4j.transport.tcp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.RegionAccess;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.metadata.BufferDescriptor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The TCP data server of real engines, probed by raw clients: with a secret set, a data connection
 * that does not prove it is closed before a header is read (no byte read or written); a local-only
 * region is refused to peers (status 1) with or without a secret; engines with the same secret move
 * bytes as before.
 */
@Tag("integration")
@Timeout(60)
class TcpAuthIntegrationTest {
    private static final String SECRET = "9c1d7e3b5a2f4c6e8d0b1a3c5e7f9a1b";
    private static final int N = 4096;
    private final List<TransferEngine> engines = new ArrayList<>();

    @AfterEach
    void closeAll() {
        engines.forEach(TransferEngine::close);
    }

    private TransferEngine engine(String secret) {
        EngineConfig.Builder c = EngineConfig.builder()
                .environment(Map.of())
                .protocol("tcp")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0);
        if (secret != null) {
            c.set(EngineConfig.AUTH_TOKEN, secret);
        }
        TransferEngine e = TransferEngine.create(c.build());
        engines.add(e);
        return e;
    }

    private static int dataPort(TransferEngine e) {
        return (int) e.localDescriptor().longField("tcp_data_port", -1);
    }

    /** Fills {@code m} with random bytes from {@code seed} and returns them. */
    private static byte[] fill(HostMemory m, long seed) {
        byte[] b = new byte[N];
        new Random(seed).nextBytes(b);
        m.buffer(0, N).put(b);
        return b;
    }

    private static byte[] contents(HostMemory m) {
        byte[] b = new byte[N];
        m.buffer(0, N).get(b);
        return b;
    }

    /** Sends a v2 request as a raw client would and returns every byte the server answers before it closes. */
    private static byte[] rawRequest(TransferEngine target, long address, int opcode) throws IOException {
        ByteBuffer out = ByteBuffer.allocate(TcpWire.HEADER_BYTES + (opcode == TcpWire.OP_WRITE ? N : 0))
                .order(ByteOrder.LITTLE_ENDIAN);
        TcpWire.putHeader(out, 0, N, address, opcode, true);
        if (opcode == TcpWire.OP_WRITE) {
            Arrays.fill(out.array(), TcpWire.HEADER_BYTES, out.capacity(), (byte) 0xEE);
        }
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        try (Socket s = new Socket(InetAddress.getLoopbackAddress(), dataPort(target))) {
            s.setSoTimeout(10_000);
            s.getOutputStream().write(out.array());
            s.shutdownOutput();
            byte[] buf = new byte[8192];
            int n;
            while ((n = s.getInputStream().read(buf)) > 0) {
                got.write(buf, 0, n);
            }
        } catch (SocketException reset) {
            // the server closed with our bytes unread
        }
        return got.toByteArray();
    }

    private static long status(byte[] reply) {
        return ByteBuffer.wrap(reply, 0, TcpWire.STATUS_BYTES).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    @Test
    void shouldMoveBytesBetweenEnginesWithTheSameSecret() {
        TransferEngine a = engine(SECRET);
        TransferEngine b = engine(SECRET);
        try (HostMemory src = a.allocate(N); HostMemory dst = b.allocate(N); HostMemory back = a.allocate(N)) {
            byte[] data = fill(src, 1);
            Segment seg = a.openSegment(b.localSegmentName());
            a.write(seg, src.address(), dst.address(), N);
            assertArrayEquals(data, contents(dst));
            a.read(seg, back.address(), dst.address(), N);
            assertArrayEquals(data, contents(back));
        }
    }

    @Test
    void shouldCloseARawDataConnectionWithoutTheSecretBeforeReadingOrWritingAByte() throws IOException {
        TransferEngine b = engine(SECRET);
        try (HostMemory mem = b.allocate(N)) {
            byte[] data = fill(mem, 2);
            // even told the address (which the handshake would not give it), a raw client gets nothing
            assertEquals(0, rawRequest(b, mem.address(), TcpWire.OP_READ).length);
            assertEquals(0, rawRequest(b, mem.address(), TcpWire.OP_WRITE).length);
            assertArrayEquals(data, contents(mem), "no byte written");
        }
    }

    @Test
    void shouldServeARawDataConnectionWhenNoSecretIsSetAsMooncakeDoes() throws IOException {
        TransferEngine b = engine(null);
        try (HostMemory mem = b.allocate(N)) {
            byte[] data = fill(mem, 3);
            byte[] reply = rawRequest(b, mem.address(), TcpWire.OP_READ);
            assertEquals(TcpWire.statusFrame(TcpWire.STATUS_OK), status(reply));
            assertArrayEquals(data, Arrays.copyOfRange(reply, TcpWire.STATUS_BYTES, reply.length));
        }
    }

    @Test
    void shouldRefuseAPeerRequestIntoALocalOnlyRegionWithStatusOneAndNothingWritten() throws IOException {
        TransferEngine a = engine(null);
        try (HostMemory published = a.allocate(N); HostMemory local = a.allocate(N, RegionAccess.LOCAL_ONLY)) {
            byte[] data = fill(local, 4);
            for (BufferDescriptor d : a.localDescriptor().buffers()) {
                assertFalse(d.contains(local.address(), 1), "local-only region published: " + d);
            }
            byte[] read = rawRequest(a, local.address(), TcpWire.OP_READ);
            assertEquals(TcpWire.STATUS_BYTES, read.length, "a status frame and no data");
            assertEquals(TcpWire.statusFrame(TcpWire.STATUS_REJECTED), status(read));
            byte[] write = rawRequest(a, local.address(), TcpWire.OP_WRITE);
            assertEquals(TcpWire.statusFrame(TcpWire.STATUS_REJECTED), status(write));
            assertArrayEquals(data, contents(local), "no byte written");
            assertEquals(TcpWire.statusFrame(TcpWire.STATUS_OK),
                    status(rawRequest(a, published.address(), TcpWire.OP_READ)));
        }
    }
}
