package io.mooncake4j.metadata.etcd;

import io.mooncake4j.HostMemory;
import io.mooncake4j.TransferEngine;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

/**
 * An engine in its own JVM that publishes itself in etcd. Arguments: {@code MC_METADATA_SERVER}.
 * Prints {@code READY <segment>} and serves until its standard input closes (or it is killed).
 */
public final class EtcdWorker {
    private EtcdWorker() {}

    public static void main(String[] args) throws Exception {
        try (TransferEngine engine = EtcdTestSupport.engine(args[0]);
                HostMemory memory = engine.allocate(1 << 16)) {
            System.out.println("READY " + engine.localSegmentName() + " " + memory.address());
            System.out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            while (in.readLine() != null) {
                // serve until the parent closes our stdin
            }
        }
    }
}
