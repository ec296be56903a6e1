package io.mooncake4j.transport.tcp;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * A child JVM for {@link FreeWhileServedIntegrationTest}: an engine with 1 MiB of host memory whose
 * {@link HostMemory#close()} runs while a raw peer is still writing into it. A bug there crashes this
 * JVM (SIGSEGV), not the test's. Commands on stdin, one answer line each on stdout:
 *
 * <ul>
 *   <li>(start) {@code READY <data port> <address>}
 *   <li>{@code close}: {@code CLOSED <ms> leaked=<bytes>}, or {@code CLOSE-THREW <message>}
 *   <li>{@code alloc}: allocates 1 MiB again: {@code ALLOC <address>}
 *   <li>{@code count <byte>}: how many bytes of the new allocation hold that value: {@code COUNT <n>}
 *   <li>{@code transfer}: a verified 64 KiB WRITE to itself over TCP: {@code TRANSFER OK} or {@code
 *       TRANSFER FAILED <why>}
 * </ul>
 */
public final class FreeWhileServedTarget {
    private FreeWhileServedTarget() {}

    public static void main(String[] args) throws Exception {
        EngineConfig config =
                EngineConfig.builder()
                        .protocol("tcp")
                        .localHostname("127.0.0.1")
                        .rpcPortRange(0, 0)
                        .transferTimeout(Duration.ofSeconds(2))
                        .set(TcpSettings.REQUEST_TIMEOUT, "120")
                        .set(TcpSettings.STALL_TIMEOUT, "60")
                        .build();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (TransferEngine engine = TransferEngine.create(config)) {
            HostMemory mem = engine.allocate(1 << 20);
            Segment self = engine.openSegment(engine.localSegmentName());
            long port = self.descriptor().longField("tcp_data_port", -1);
            say("READY " + port + " " + mem.address());
            HostMemory again = null;
            String line;
            while ((line = in.readLine()) != null) {
                String[] cmd = line.trim().split(" ");
                switch (cmd[0]) {
                    case "close":
                        long t0 = System.nanoTime();
                        try {
                            mem.close();
                            say("CLOSED " + (System.nanoTime() - t0) / 1_000_000 + " leaked=" + HostMemory.leakedBytes());
                        } catch (RuntimeException e) {
                            say("CLOSE-THREW " + e.getMessage());
                        }
                        break;
                    case "alloc":
                        again = engine.allocate(1 << 20);
                        say("ALLOC " + again.address());
                        break;
                    case "count":
                        byte value = (byte) Integer.parseInt(cmd[1]);
                        ByteBuffer b = again.buffer();
                        int n = 0;
                        while (b.hasRemaining()) {
                            n += b.get() == value ? 1 : 0;
                        }
                        say("COUNT " + n);
                        break;
                    case "transfer":
                        say(transfer(engine, self));
                        break;
                    default:
                        say("UNKNOWN " + line);
                }
            }
        }
    }

    private static String transfer(TransferEngine engine, Segment self) {
        try (HostMemory src = engine.allocate(64 << 10);
                HostMemory dst = engine.allocate(64 << 10)) {
            ByteBuffer s = src.buffer();
            for (int i = 0; i < s.capacity(); i++) {
                s.put(i, (byte) (i * 31 + 7));
            }
            TransferBatch t = engine.newBatch(1).write(self, src.address(), dst.address(), 64 << 10).submit().join();
            if (t.status(0) != TransferStatus.COMPLETED) {
                return "TRANSFER FAILED " + t.status(0) + " " + t.failureReason(0);
            }
            return dst.buffer().equals(src.buffer()) ? "TRANSFER OK" : "TRANSFER FAILED bytes differ";
        }
    }

    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
