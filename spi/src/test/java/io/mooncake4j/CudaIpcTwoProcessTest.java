package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.testkit.Bytes;
import io.mooncake4j.testkit.DeviceTargetProcess;
import io.mooncake4j.testkit.FakeGpu;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import io.mooncake4j.testkit.TargetProcessHandle;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * CUDA IPC between two JVMs through the real engine, on CPU with {@link FakeGpu} (whose exported
 * "device memory" is a shared file both processes map): the target child's GPU buffer is read and
 * written device to device by this engine when the child publishes this host's boot id, and left to
 * the network transport otherwise. The child publishes protocol {@code test-mem2}, whose transport
 * (the test kit's in-memory one) this engine installs but which cannot reach another JVM: a request
 * it is handed ends FAILED "peer gone". So a COMPLETED request with the right bytes can only have
 * gone through IPC, and a "peer gone" one shows that the network transport got it.
 */
@Tag("integration")
@Timeout(120)
class CudaIpcTwoProcessTest {
    private static final int N = 64 << 10;
    private static final String NETWORK_TRANSPORT = "peer gone";

    private final List<TargetProcessHandle> children = new ArrayList<>();

    @BeforeEach
    void share() {
        FakeGpu.sharing = true;
    }

    @AfterEach
    void stop() throws Exception {
        FakeGpu.sharing = false;
        FakeGpu.ipcOpenFailure = null;
        for (TargetProcessHandle c : children) {
            c.close();
        }
    }

    private static TransferEngine engine(Map<String, String> settings) {
        EngineConfig.Builder b = EngineConfig.builder()
                .environment(Map.of())
                .protocol(InMemoryTransportProvider.PROTOCOL)
                .set(EngineConfig.INSTALLED_TRANSPORTS, InMemoryTransportProvider.Second.PROTOCOL)
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(Duration.ofSeconds(20));
        settings.forEach(b::set);
        return FakeGpu.installedFor(() -> TransferEngine.create(b.build()));
    }

    private TargetProcessHandle child(String... jvmOptions) throws Exception {
        List<String> options = new ArrayList<>(List.of("-Xmx128m", "-Dmooncake4j.target.fakegpu=true",
                "-Dmooncake4j.fakegpu.ipc=true"));
        options.addAll(List.of(jvmOptions));
        TargetProcessHandle c = TargetProcessHandle.start(DeviceTargetProcess.class,
                List.of(InMemoryTransportProvider.Second.PROTOCOL, Integer.toString(4 * N)), options);
        children.add(c);
        assertEquals("OK", c.command("fill 7"));
        return c;
    }

    private static long childCrc(TargetProcessHandle c, long offset, int length) throws Exception {
        String answer = c.command("crc " + offset + " " + length);
        assertTrue(answer.startsWith("CRC "), answer);
        return Long.parseLong(answer.substring(4));
    }

    @Test
    void shouldReadAndWriteThePeersGpuBufferThroughIpcWhenItIsOnThisHost() throws Exception {
        TargetProcessHandle child = child();
        int opens = FakeGpu.IPC_OPENS.get();
        int closes = FakeGpu.IPC_CLOSES.get();
        TransferEngine engine = engine(Map.of());
        try (HostMemory host = engine.allocate(2 * N);
                DeviceMemory gpu = engine.allocate(2 * N, MemoryLocation.cuda(0))) {
            Segment peer = engine.openSegment(child.segment);
            assertEquals("cuda:0", peer.buffers().get(0).name());
            byte[] up = DeviceTargetProcess.pattern(11, 0, 2 * N);
            host.buffer().put(0, up);
            NativeMemory.wrap(gpu.address(), 2 * N).put(0, up);
            long remote = child.address;
            TransferBatch b = engine.newBatch(4)
                    .read(peer, host.address() + N, remote, N) // device -> host
                    .read(peer, gpu.address() + N, remote + N, N) // device -> device
                    .write(peer, host.address(), remote + 2 * N, N) // host -> device
                    .write(peer, gpu.address(), remote + 3 * N, N) // device -> device
                    .submit();
            assertTrue(b.await(Duration.ofSeconds(30)));
            for (int i = 0; i < 4; i++) {
                assertEquals(TransferStatus.COMPLETED, b.status(i), "request " + i + ": " + b.failureReason(i));
            }
            assertArrayEquals(DeviceTargetProcess.pattern(7, 0, N), Bytes.at(host.address() + N, N), "READ into host memory");
            assertArrayEquals(DeviceTargetProcess.pattern(7, N, N), Bytes.at(gpu.address() + N, N), "READ into GPU memory");
            long written = DeviceTargetProcess.crc(java.util.Arrays.copyOf(up, N));
            assertEquals(written, childCrc(child, 2 * N, N), "WRITE from host memory, as the peer sees it");
            assertEquals(written, childCrc(child, 3 * N, N), "WRITE from GPU memory, as the peer sees it");

            // a second round uses the same mapping: opened once per buffer
            engine.read(peer, host.address(), remote + 3 * N, N);
            assertArrayEquals(java.util.Arrays.copyOf(up, N), Bytes.at(host.address(), N));
            Map<String, Long> counters = engine.counters();
            assertEquals(5, counters.get("cuda_ipc.requests"), counters.toString());
            assertEquals(5L * N, counters.get("cuda_ipc.bytes"));
            assertEquals(1, counters.get("cuda_ipc.opens"));
            assertEquals(opens + 1, FakeGpu.IPC_OPENS.get());
            assertEquals(0, counters.get("cuda_ipc.closes"));

            // outside the published buffer: refused like any remote request, nothing copied
            TransferBatch outside = engine.newBatch(1).write(peer, host.address(), remote + 4 * N - 8, 16).submit();
            assertTrue(outside.await(Duration.ofSeconds(30)));
            assertEquals(TransferStatus.INVALID, outside.status(0));
            assertTrue(outside.failureReason(0).contains("lies in no single buffer"), outside.failureReason(0));
            assertEquals(5, engine.counters().get("cuda_ipc.requests"));
        } finally {
            engine.close();
        }
        assertEquals(1, engine.counters().get("cuda_ipc.closes"), "unmapped when the engine closed");
        assertEquals(closes + 1, FakeGpu.IPC_CLOSES.get());
    }

    @Test
    void shouldUnmapABufferThePeerNoLongerPublishesAndMapItsNewOne() throws Exception {
        TargetProcessHandle child = child();
        try (TransferEngine engine = engine(Map.of()); HostMemory host = engine.allocate(N)) {
            Segment peer = engine.openSegment(child.segment);
            engine.read(peer, host.address(), child.address, N);
            assertArrayEquals(DeviceTargetProcess.pattern(7, 0, N), Bytes.at(host.address(), N));
            String[] moved = child.command("reallocate").split(" ");
            long fresh = Long.parseLong(moved[1]);
            assertEquals("OK", child.command("fill 9"));
            engine.refreshSegment(peer);
            Map<String, Long> counters = engine.counters();
            assertEquals(1, counters.get("cuda_ipc.closes"), "the old buffer's mapping closed at the re-fetch: " + counters);
            engine.read(peer, host.address(), fresh, N);
            assertArrayEquals(DeviceTargetProcess.pattern(9, 0, N), Bytes.at(host.address(), N));
            counters = engine.counters();
            assertEquals(2, counters.get("cuda_ipc.opens"), counters.toString());
            assertEquals(1, counters.get("cuda_ipc.closes"), counters.toString());

            // a request to an address the cached descriptor does not show re-fetches it: same effect
            long third = Long.parseLong(child.command("reallocate").split(" ")[1]);
            engine.read(peer, host.address(), third, N);
            counters = engine.counters();
            assertEquals(3, counters.get("cuda_ipc.opens"), counters.toString());
            assertEquals(2, counters.get("cuda_ipc.closes"), counters.toString());
        }
    }

    @Test
    void shouldRouteToTheNetworkTransportWhenThePeerIsOnAnotherHost() throws Exception {
        TargetProcessHandle child = child("-Dmc.boot.id=another-host");
        int opens = FakeGpu.IPC_OPENS.get();
        try (TransferEngine engine = engine(Map.of()); HostMemory host = engine.allocate(N)) {
            Segment peer = engine.openSegment(child.segment);
            assertEquals("another-host", peer.descriptor().field("mc4j_boot_id").getAsString());
            assertTrue(peer.buffers().get(0).extra().has("mc4j_cuda_ipc"), "the child still exports its buffer");
            TransferBatch b = engine.newBatch(1).read(peer, host.address(), child.address, N).submit();
            assertTrue(b.await(Duration.ofSeconds(30)));
            assertEquals(TransferStatus.FAILED, b.status(0));
            assertTrue(b.failureReason(0).contains(NETWORK_TRANSPORT), b.failureReason(0));
            assertEquals(0, engine.counters().get("cuda_ipc.requests"));
            assertEquals(opens, FakeGpu.IPC_OPENS.get());
        }
    }

    @Test
    void shouldFallBackToTheNetworkOnceWithOneLogLineWhenMappingFails() throws Exception {
        TargetProcessHandle child = child();
        FakeGpu.ipcOpenFailure = "simulated: the peer is in another IPC namespace";
        PrintStream err = System.err;
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        int opens = FakeGpu.IPC_OPENS.get();
        try (TransferEngine engine = engine(Map.of()); HostMemory host = engine.allocate(N)) {
            Segment peer = engine.openSegment(child.segment);
            System.setErr(new PrintStream(log, true, StandardCharsets.UTF_8));
            try {
                for (int round = 0; round < 3; round++) {
                    TransferBatch b = engine.newBatch(2)
                            .read(peer, host.address(), child.address, N)
                            .write(peer, host.address(), child.address + N, N)
                            .submit();
                    assertTrue(b.await(Duration.ofSeconds(30)));
                    for (int i = 0; i < 2; i++) {
                        assertEquals(TransferStatus.FAILED, b.status(i));
                        assertTrue(b.failureReason(i).contains(NETWORK_TRANSPORT), b.failureReason(i));
                    }
                }
            } finally {
                System.setErr(err);
            }
            Map<String, Long> counters = engine.counters();
            assertEquals(1, counters.get("cuda_ipc.open_failures"), "tried once, remembered: " + counters);
            assertEquals(0, counters.get("cuda_ipc.requests"));
            assertEquals(opens, FakeGpu.IPC_OPENS.get());
            List<String> lines = log.toString(StandardCharsets.UTF_8).lines()
                    .filter(l -> l.contains("CUDA IPC with segment " + child.segment)).toList();
            assertEquals(1, lines.size(), log.toString(StandardCharsets.UTF_8));
            assertTrue(lines.get(0).contains("another IPC namespace"), lines.get(0));
        }
        assertEquals(DeviceTargetProcess.crc(DeviceTargetProcess.pattern(7, N, N)), childCrc(child, N, N),
                "the failed WRITEs touched nothing");
    }

    @Test
    void shouldNeitherPublishNorUseIpcWhenTurnedOff() throws Exception {
        TargetProcessHandle exporting = child();
        TargetProcessHandle off = child("-Dmc.cuda.ipc=0");
        try (TransferEngine engine = engine(Map.of(EngineConfig.CUDA_IPC, "0"));
                DeviceMemory gpu = engine.allocate(N, MemoryLocation.cuda(0))) {
            assertFalse(engine.localDescriptor().toJson().has("mc4j_boot_id"));
            assertFalse(engine.localDescriptor().buffers().get(0).extra().has("mc4j_cuda_ipc"));
            Segment offPeer = engine.openSegment(off.segment);
            assertFalse(offPeer.descriptor().toJson().has("mc4j_boot_id"));
            assertFalse(offPeer.buffers().get(0).extra().has("mc4j_cuda_ipc"));
            TransferBatch b = engine.newBatch(1).read(engine.openSegment(exporting.segment), gpu.address(), exporting.address, N).submit();
            assertTrue(b.await(Duration.ofSeconds(30)));
            assertEquals(TransferStatus.FAILED, b.status(0));
            assertTrue(b.failureReason(0).contains(NETWORK_TRANSPORT), b.failureReason(0));
            assertEquals(0, engine.counters().get("cuda_ipc.requests"));
        }
    }
}
