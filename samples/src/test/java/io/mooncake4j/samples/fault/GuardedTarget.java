package io.mooncake4j.samples.fault;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.TransferEngine;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

/**
 * The target peer of the fault tests, run in a child JVM by {@link FaultPeer}: an engine with one
 * registered buffer laid out by {@link Guards}. It prints {@code READY <segment> <buffer address>},
 * then answers {@code guards} on standard input with {@code GUARDS intact} (or where a canary
 * changed), checked here in its own memory rather than through the transport under test; it exits
 * when its standard input ends.
 *
 * <p>Arguments: {@code <protocol> <advertised host> <guard bytes> <window bytes> [<handshake port, 0:
 * any> [<MOONCAKE_DEVICE>]]}.
 */
public final class GuardedTarget {
    private GuardedTarget() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: GuardedTarget <protocol> <host> <guard bytes> <window bytes> [port [device]]");
            System.exit(2);
        }
        int guard = Integer.parseInt(args[2]);
        int window = Integer.parseInt(args[3]);
        EngineConfig.Builder config = EngineConfig.builder().protocol(args[0]).localHostname(args[1]);
        int port = args.length > 4 ? Integer.parseInt(args[4]) : 0;
        if (port > 0) {
            config.rpcPortRange(port, port);
        }
        if (args.length > 5) {
            config.device(args[5]);
        }
        try (TransferEngine engine = TransferEngine.create(config.build());
                HostMemory memory = engine.allocate(Guards.totalLength(guard, window))) {
            Guards guards = Guards.arm(memory, guard, window);
            System.out.println("READY " + engine.localSegmentName() + " " + memory.address());
            System.out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            String line;
            while ((line = in.readLine()) != null) {
                System.out.println(line.trim().equals("guards") ? "GUARDS " + guards.check() : "UNKNOWN " + line);
                System.out.flush();
            }
        }
        System.exit(0);
    }
}
