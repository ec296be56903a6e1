package io.mooncake4j.testkit;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.TransferEngine;
import java.util.List;

/**
 * A target engine with device memory in its own JVM, for two-process GPU tests. Arguments: protocol,
 * bytes, and {@code fake} (the engine finds {@link FakeGpu}) or {@code real} (the providers on the
 * class path, e.g. {@code mooncake4j-gpu-cuda}). Allocates {@code bytes} on {@code cuda:0} and
 * {@code bytes} of host memory, prints {@code READY <segment> <gpu address> <bytes> <host address>}
 * and serves until its standard input closes.
 */
public final class DeviceTargetProcess {
    private DeviceTargetProcess() {}

    /** Starts a child with {@code bytes} of device and of host memory; its host address is {@link #hostAddress}. */
    public static TargetProcessHandle start(String protocol, long bytes, boolean fake) throws java.io.IOException {
        return TargetProcessHandle.start(DeviceTargetProcess.class,
                List.of(protocol, Long.toString(bytes), fake ? "fake" : "real"), List.of("-Xmx256m"));
    }

    /** The child's registered host memory (its device memory is {@link TargetProcessHandle#address}). */
    public static long hostAddress(TargetProcessHandle child) {
        return Long.parseLong(child.ready[4]);
    }

    public static void main(String[] args) throws Exception {
        EngineConfig config = TargetProcess.config(args[0]);
        long bytes = Long.parseLong(args[1]);
        try (TransferEngine engine = args[2].equals("fake")
                        ? FakeGpu.installedFor(() -> TransferEngine.create(config))
                        : TransferEngine.create(config);
                DeviceMemory gpu = engine.allocate(bytes, MemoryLocation.cuda(0));
                HostMemory host = engine.allocate(bytes)) {
            TargetProcess.serve("READY " + engine.localSegmentName() + " " + gpu.address() + " " + bytes + " " + host.address());
        }
    }
}
