package io.mooncake4j.testkit;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.TransferEngine;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * A target engine in its own JVM for two-process tests. Arguments: protocol, buffer bytes. Prints
 * {@code READY <segment> <address> <length>} and serves until its standard input closes.
 */
public final class TargetProcess {
    private TargetProcess() {}

    public static void main(String[] args) throws Exception {
        try (TransferEngine engine = TransferEngine.create(config(args[0]));
                HostMemory memory = engine.allocate(Long.parseLong(args[1]))) {
            serve("READY " + engine.localSegmentName() + " " + memory.address() + " " + memory.length());
        }
    }

    /** A target's settings: {@code protocol}, loopback, any port, a 10 s transfer timeout. */
    static EngineConfig config(String protocol) {
        return EngineConfig.builder()
                .protocol(protocol)
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(Duration.ofSeconds(10))
                .build();
    }

    /** Prints {@code ready} for the parent, then serves until the parent closes our standard input. */
    static void serve(String ready) throws java.io.IOException {
        System.out.println(ready);
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        while (in.readLine() != null) {
            // serve until the parent closes our stdin
        }
    }
}
