package io.mooncake4j.testkit;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.TransferEngine;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.Supplier;
import java.util.zip.CRC32;

/**
 * A target engine in its own JVM whose registered memory is GPU memory ({@code cuda:0}), for
 * two-process GPU tests (GPU-aware TCP, CUDA IPC): {@link FakeGpu} with {@code
 * -Dmooncake4j.target.fakegpu=true} (add {@code -Dmooncake4j.fakegpu.ipc=true} to export it), else
 * whatever device provider is on the class path. Arguments: protocol, bytes. It registers {@code
 * bytes} on {@code cuda:0} and {@code bytes} of host memory, prints {@code READY <segment> <gpu
 * address> <bytes> <host address>}, then answers one line per command on its standard input until it
 * closes; the device memory is read and written through the engine's own loopback copies, so this
 * works on any provider:
 *
 * <ul>
 *   <li>{@code fill <seed>}: writes {@link #pattern} over the whole GPU buffer; {@code OK};
 *   <li>{@code crc <offset> <length>}: {@code CRC <crc32>} of those bytes of the GPU buffer;
 *   <li>{@code reallocate}: frees the GPU buffer and registers a new one; {@code ADDRESS <address> <length>}.
 * </ul>
 */
public final class DeviceTargetProcess {
    private DeviceTargetProcess() {}

    /** Starts a child with {@code bytes} of device and of host memory, on {@link FakeGpu} when {@code fake}. */
    public static TargetProcessHandle start(String protocol, long bytes, boolean fake) throws IOException {
        return TargetProcessHandle.start(DeviceTargetProcess.class, List.of(protocol, Long.toString(bytes)),
                List.of("-Xmx256m", "-Dmooncake4j.target.fakegpu=" + fake));
    }

    /** The child's registered host memory (its device memory is {@link TargetProcessHandle#address}). */
    public static long hostAddress(TargetProcessHandle child) {
        return Long.parseLong(child.ready[4]);
    }

    /** Bytes that depend on the seed and the offset, so a misplaced block shows. */
    public static byte[] pattern(int seed, long offset, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            long at = offset + i;
            b[i] = (byte) (at * 31 + seed * 7 + (at >>> 11));
        }
        return b;
    }

    /** The CRC-32 of {@code bytes}. */
    public static long crc(byte[] bytes) {
        CRC32 c = new CRC32();
        c.update(bytes);
        return c.getValue();
    }

    /** The engine's counters whose key starts with {@code prefix}, as {@code key=value} separated by spaces. */
    public static String counters(TransferEngine engine, String prefix) {
        StringBuilder b = new StringBuilder();
        engine.counters().forEach((k, v) -> {
            if (k.startsWith(prefix)) {
                b.append(b.length() == 0 ? "" : " ").append(k).append('=').append(v);
            }
        });
        return b.toString();
    }

    public static void main(String[] args) throws Exception {
        EngineConfig config = TargetProcess.config(args[0]);
        long bytes = Long.parseLong(args[1]);
        Supplier<TransferEngine> create = () -> TransferEngine.create(config);
        boolean fake = Boolean.getBoolean("mooncake4j.target.fakegpu");
        try (TransferEngine engine = fake ? FakeGpu.installedFor(create) : create.get();
                HostMemory host = engine.allocate(bytes)) {
            DeviceMemory gpu = engine.allocate(bytes, MemoryLocation.cuda(0));
            System.out.println("READY " + engine.localSegmentName() + " " + gpu.address() + " " + gpu.length() + " "
                    + host.address());
            System.out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                String[] c = line.trim().split(" ");
                String answer;
                switch (c[0]) {
                    case "fill":
                        engine.copyIn(gpu.address(), ByteBuffer.wrap(pattern(Integer.parseInt(c[1]), 0, (int) bytes)));
                        answer = "OK";
                        break;
                    case "crc":
                        long offset = Long.parseLong(c[1]);
                        int length = Integer.parseInt(c[2]);
                        byte[] got = new byte[length];
                        engine.copyOut(gpu.address() + offset, ByteBuffer.wrap(got));
                        answer = "CRC " + crc(got);
                        break;
                    case "reallocate":
                        DeviceMemory next = engine.allocate(bytes, MemoryLocation.cuda(0));
                        gpu.close();
                        gpu = next;
                        answer = "ADDRESS " + gpu.address() + " " + gpu.length();
                        break;
                    case "counters":
                        answer = "COUNTERS " + counters(engine, c.length > 1 ? c[1] : "");
                        break;
                    default:
                        answer = "UNKNOWN " + line;
                }
                System.out.println(answer);
                System.out.flush();
            }
            gpu.close();
        }
    }
}
