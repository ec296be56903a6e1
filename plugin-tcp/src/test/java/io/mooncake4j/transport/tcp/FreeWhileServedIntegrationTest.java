package io.mooncake4j.transport.tcp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Freeing host memory while a peer's request still writes into it (issue 7.1). The target runs in a
 * child JVM ({@link FreeWhileServedTarget}), so that a write into unmapped memory crashes the child
 * and fails this test instead of killing it. Every byte goes to loopback.
 */
@Tag("integration")
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class FreeWhileServedIntegrationTest {
    private static final byte FILL = (byte) 0xAB;

    private Process child;
    private Writer commands;
    private final BlockingQueue<String> answers = new LinkedBlockingQueue<>();
    private Path childLog;
    private int port;
    private long base;

    @BeforeEach
    void startChild() throws Exception {
        childLog = Files.createTempFile("free-while-served", ".log");
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-XX:+UseSerialGC");
        cmd.add("-XX:-CreateCoredumpOnCrash");
        cmd.add("-XX:ErrorFile=" + childLog.getParent().resolve("free-while-served-hs_err_%p.log"));
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(FreeWhileServedTarget.class.getName());
        child = new ProcessBuilder(cmd).redirectError(childLog.toFile()).start();
        commands = new OutputStreamWriter(child.getOutputStream(), StandardCharsets.UTF_8);
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    answers.add(line);
                }
            } catch (IOException e) {
                // the child is gone
            }
            answers.add("EOF");
        }, "child-stdout");
        reader.setDaemon(true);
        reader.start();
        String[] ready = answer(20).split(" ");
        assertEquals("READY", ready[0], "the child did not start");
        port = Integer.parseInt(ready[1]);
        base = Long.parseLong(ready[2]);
    }

    @AfterEach
    void stopChild() throws Exception {
        child.getOutputStream().close();
        if (!child.waitFor(10, TimeUnit.SECONDS)) {
            child.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
        }
        Files.deleteIfExists(childLog);
    }

    @Test
    void shouldNotUnmapMemoryWhenAPeerKeepsItsWritePinnedByTrickling() throws Exception {
        try (SocketChannel peer = SocketChannel.open(new InetSocketAddress("127.0.0.1", port))) {
            sendHeaderAndPayload(peer, 60_000, 59_980);
            send("close");
            // one byte per 500 ms while close() runs: inside every stall window, never the whole payload
            String closed = null;
            boolean open = true;
            for (int i = 0; i < 40 && closed == null; i++) {
                closed = answers.poll(500, TimeUnit.MILLISECONDS);
                if (closed == null && open) {
                    open = trySend(peer, 1);
                }
            }
            // then the rest of the payload: lands in the memory if it was unmapped under the request
            trySend(peer, 20);
            TimeUnit.MILLISECONDS.sleep(500);
            assertChildAlive();
            assertTrue(closed != null && closed.startsWith("CLOSED") && closed.endsWith("leaked=0"),
                    "close() should stop the peer's request and free the memory, got: " + closed);
            assertEquals(-1, readOrEof(peer), "the target should have closed the peer's connection");
        }
        send("transfer");
        assertEquals("TRANSFER OK", answer(20));
    }

    @Test
    void shouldNotLetLateBytesOfALargeWriteLandInMemoryAllocatedAfterClose() throws Exception {
        try (SocketChannel peer = SocketChannel.open(new InetSocketAddress("127.0.0.1", port))) {
            sendHeaderAndPayload(peer, 1_000_000, 100_000); // large: goes straight into memory
            send("close");
            String closed = answer(30);
            send("alloc");
            String[] alloc = answer(10).split(" ");
            assertEquals("ALLOC", alloc[0]);
            trySend(peer, 900_000);
            TimeUnit.MILLISECONDS.sleep(500);
            send("count " + (FILL & 0xFF));
            String count = answer(10);
            assertChildAlive();
            assertEquals("COUNT 0", count, "the peer's bytes landed in the new allocation at 0x"
                    + Long.toHexString(Long.parseLong(alloc[1])) + " (old 0x" + Long.toHexString(base) + ")");
            assertTrue(closed.startsWith("CLOSED") && closed.endsWith("leaked=0"), closed);
        }
        send("transfer");
        assertEquals("TRANSFER OK", answer(20));
    }

    private void sendHeaderAndPayload(SocketChannel peer, long size, int sent) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(TcpWire.HEADER_BYTES + sent).order(ByteOrder.LITTLE_ENDIAN);
        TcpWire.putHeader(b, 0, size, base, TcpWire.OP_WRITE, true);
        for (int i = TcpWire.HEADER_BYTES; i < b.capacity(); i++) {
            b.put(i, FILL);
        }
        while (b.hasRemaining()) {
            peer.write(b);
        }
        // let the target read the header and pin the range before close() removes it (no signal
        // exists for that; if it were late, the request would be rejected and the test would fail)
        TimeUnit.SECONDS.sleep(1);
    }

    /** Sends {@code n} payload bytes; false once the target has closed the connection. */
    private static boolean trySend(SocketChannel peer, int n) {
        ByteBuffer b = ByteBuffer.allocate(n);
        for (int i = 0; i < n; i++) {
            b.put(i, FILL);
        }
        try {
            while (b.hasRemaining()) {
                peer.write(b);
            }
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static int readOrEof(SocketChannel peer) {
        try {
            return peer.read(ByteBuffer.allocate(8));
        } catch (IOException e) {
            return -1; // reset by the target: closed too
        }
    }

    private void send(String command) throws IOException {
        commands.write(command + "\n");
        commands.flush();
    }

    private String answer(int seconds) throws Exception {
        String a = answers.poll(seconds, TimeUnit.SECONDS);
        if (a == null || a.equals("EOF")) {
            fail("the child gave no answer (" + a + "); exit " + exitCode() + "; its log:\n" + childLog());
        }
        return a;
    }

    private void assertChildAlive() throws Exception {
        if (!child.isAlive() || answers.contains("EOF")) {
            child.waitFor(5, TimeUnit.SECONDS);
            fail("the target JVM died (exit " + exitCode() + "); its log:\n" + childLog());
        }
    }

    private String exitCode() {
        return child.isAlive() ? "none, still running" : Integer.toString(child.exitValue());
    }

    private String childLog() throws IOException {
        String log = Files.readString(childLog);
        return log.length() > 4000 ? log.substring(0, 4000) + "\n..." : log;
    }

    static File javaHome() {
        return new File(System.getProperty("java.home"));
    }
}
