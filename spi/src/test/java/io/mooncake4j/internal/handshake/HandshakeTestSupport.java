package io.mooncake4j.internal.handshake;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.gson.JsonObject;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.function.BooleanSupplier;

/** Raw-socket helpers for handshake tests. */
final class HandshakeTestSupport {
    static final String LOOPBACK = "127.0.0.1";

    private HandshakeTestSupport() {}

    static Socket connect(int port) throws IOException {
        Socket s = new Socket();
        s.connect(new InetSocketAddress(LOOPBACK, port), 2000);
        s.setSoTimeout(5000);
        s.setTcpNoDelay(true);
        return s;
    }

    /** A connection from a chosen loopback address (127.0.0.2, ...), to stand for another host. */
    static Socket connectFrom(String localAddress, int port) throws IOException {
        Socket s = new Socket();
        s.bind(new InetSocketAddress(localAddress, 0));
        s.connect(new InetSocketAddress(LOOPBACK, port), 2000);
        s.setSoTimeout(5000);
        return s;
    }

    static byte[] le64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    static void send(Socket s, HandshakeFrame f) throws IOException {
        s.getOutputStream().write(HandshakeCodec.encode(f));
        s.getOutputStream().flush();
    }

    static HandshakeFrame receive(Socket s) throws IOException {
        return HandshakeCodec.read(s.getInputStream(), HandshakeCodec.DEFAULT_MAX_FRAME_LENGTH);
    }

    /** Waits until the peer closes {@code s} (EOF or reset), failing after {@code within}. */
    static Duration awaitClosedByPeer(Socket s, Duration within) throws IOException {
        long start = System.nanoTime();
        s.setSoTimeout((int) within.toMillis());
        InputStream in = s.getInputStream();
        byte[] buf = new byte[4096];
        try {
            while (true) {
                int n = in.read(buf);
                if (n < 0) {
                    break;
                }
            }
        } catch (SocketTimeoutException e) {
            fail("the server did not close the connection within " + within);
        } catch (SocketException e) {
            // reset: closed as well
        }
        return Duration.ofNanos(System.nanoTime() - start);
    }

    /** A port nothing listens on (just released by the OS). */
    static int freePort() throws IOException {
        try (ServerSocket ss = new ServerSocket(0)) {
            return ss.getLocalPort();
        }
    }

    static void eventually(BooleanSupplier condition, Duration within, String what)
            throws InterruptedException {
        long deadline = System.nanoTime() + within.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("not true within " + within + ": " + what);
            }
            Thread.sleep(5);
        }
        assertTrue(condition.getAsBoolean());
    }

    static JsonObject descriptorJson(String name) {
        JsonObject o = new JsonObject();
        o.addProperty("name", name);
        o.addProperty("protocol", "tcp");
        o.addProperty("tcp_data_port", 16001);
        o.addProperty("tcp_proto_version", 2);
        com.google.gson.JsonArray buffers = new com.google.gson.JsonArray();
        JsonObject b = new JsonObject();
        b.addProperty("name", "cpu:0");
        b.add("addr", com.google.gson.JsonParser.parseString("18446744073709547520"));
        b.addProperty("length", 4096);
        buffers.add(b);
        o.add("buffers", buffers);
        return o;
    }
}
