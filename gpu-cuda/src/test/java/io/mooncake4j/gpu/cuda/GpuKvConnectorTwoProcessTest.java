package io.mooncake4j.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.connector.KvConnector;
import io.mooncake4j.djl.connector.KvConnectorConfig;
import io.mooncake4j.djl.connector.KvTransferParams;
import io.mooncake4j.djl.connector.KvTransferStats;
import io.mooncake4j.djl.connector.PrefillRequest;
import io.mooncake4j.djl.connector.TransferMode;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * GPU KV blocks between two JVMs through the KV connector: a prefill pool and a decode pool, each
 * on {@code cuda:0} of its own process, pushed (decode first) and pulled (prefill first), every
 * block checked on the decode side. The engine picks the path between the processes (the tcp
 * transport staging GPU memory, or CUDA IPC for a peer on the same host). Skipped, saying why,
 * without a GPU.
 */
@Tag("gpu")
@Timeout(value = 150, unit = TimeUnit.SECONDS)
class GpuKvConnectorTwoProcessTest {
    private Process child;
    private PrintWriter toChild;
    private final BlockingQueue<String> fromChild = new LinkedBlockingQueue<>();

    private void startDecodeProcess(boolean cudaIpc) throws Exception {
        GpuMemory.requireGpu();
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        child = new ProcessBuilder(List.of(java.toString(), "-cp", System.getProperty("java.class.path"),
                GpuKvDecodeProcess.class.getName(), cudaIpc ? "1" : "0"))
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        toChild = new PrintWriter(new OutputStreamWriter(child.getOutputStream(), StandardCharsets.UTF_8), true);
        BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
        Thread reader = new Thread(() -> out.lines().forEach(fromChild::add), "decode-process-stdout");
        reader.setDaemon(true);
        reader.start();
    }

    @AfterEach
    void stopDecodeProcess() throws Exception {
        if (child != null) {
            toChild.close();
            if (!child.waitFor(20, TimeUnit.SECONDS)) {
                child.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    private String nextLine() throws InterruptedException {
        String line = fromChild.poll(90, TimeUnit.SECONDS);
        if (line == null) {
            throw new AssertionError("the decode process said nothing within 90 s (alive: " + child.isAlive() + ")");
        }
        return line;
    }

    /** Both same-host paths: CUDA IPC (the default), and GPU-aware TCP with IPC turned off on both sides. */
    @ParameterizedTest(name = "cuda ipc {0}")
    @ValueSource(booleans = {true, false})
    void shouldPushAndPullGpuKvBlocksBetweenTwoProcessesByteExact(boolean cudaIpc) throws Exception {
        startDecodeProcess(cudaIpc);
        try (TransferEngine engine = GpuEngines.createNetworked(cudaIpc);
                PagedKvPool pool = PagedKvPool.allocate(engine, GpuKvDecodeProcess.LAYOUT, MemoryLocation.cuda(0));
                KvConnector prefill = KvConnector.create(pool,
                        KvConnectorConfig.builder().environment(Map.of()).build(), ArraylessManager.create())) {
            // push: the decode process reserves blocks and hands over its destination
            toChild.println("expect push-1 200 5");
            String params = nextLine();
            assertTrue(params.startsWith("PARAMS "), params);
            PrefillRequest push = prefill.startPrefill("push-1", 200, KvTransferParams.parse(params.substring(7)));
            KvBlockPattern.fill(pool, push.cache().blocks(), 5);
            push.finish();
            KvTransferStats pushed = push.await(GpuKvDecodeProcess.WAIT);
            assertEquals("OK push-1", nextLine());
            long bytes = 13L * GpuKvDecodeProcess.LAYOUT.blockBytes() * GpuKvDecodeProcess.LAYOUT.layers() * 2;
            assertEquals(bytes, pushed.bytes());

            // pull: prefill computes first, the decode process reads the blocks
            PrefillRequest pull = prefill.startPrefill("pull-1", 333, null);
            KvBlockPattern.fill(pool, pull.cache().blocks(), 9);
            toChild.println("fetch 9 " + pull.finish(TransferMode.PULL).toJsonString());
            assertEquals("OK pull-1", nextLine());
            pull.await(GpuKvDecodeProcess.WAIT);
            assertEquals(0, pool.allocator().usedBlocks());
            long viaIpc = engine.counters().get("cuda_ipc.requests");
            assertEquals(cudaIpc, viaIpc > 0, "pushed through CUDA IPC: " + viaIpc + " requests");
            System.out.println("GPU KV connector between two processes over " + (cudaIpc ? "CUDA IPC" : engine.protocol())
                    + ": pushed "
                    + pushed.bytes() + " bytes in " + pushed.requests() + " requests, pulled 21 blocks per layer"
                    + " and part, both byte-exact");
        }
    }
}
