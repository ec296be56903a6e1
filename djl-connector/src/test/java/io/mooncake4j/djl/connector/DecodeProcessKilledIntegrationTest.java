package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.KvTestSupport;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A decode worker process is frozen (SIGSTOP) while prefill pushes it 64 MiB over tcp, so the push
 * is provably in flight, then killed (SIGKILL): prefill must free its blocks and serve the next
 * request.
 */
@Tag("integration")
@Timeout(90)
class DecodeProcessKilledIntegrationTest {
    private static final KvLayout BIG = new KvLayout(32, 8, 128, 16, 16, DataType.FLOAT32);

    private static void signal(long pid, String sig) throws Exception {
        assertEquals(0, new ProcessBuilder("kill", "-" + sig, Long.toString(pid)).start().waitFor());
    }

    @Test
    void shouldFreePrefillBlocksWhenTheDecodeProcessIsKilledMidTransfer() throws Exception {
        assumeTrue(Files.isExecutable(Path.of("/bin/kill")) || Files.isExecutable(Path.of("/usr/bin/kill")), "needs kill");
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process child = new ProcessBuilder(List.of(java.toString(), "-cp", System.getProperty("java.class.path"),
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", DecodeWorkerProcess.class.getName(),
                BIG.toJson().toString(), "kill-1", "256"))
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
        try (NDManager manager = KvTestSupport.newManager();
                TransferEngine engine = KvTestSupport.engine("tcp", Duration.ofSeconds(20));
                PagedKvPool pool = PagedKvPool.allocate(engine, BIG);
                KvConnector prefill = KvConnector.create(pool, KvConnectorConfig.builder().environment(Map.of()).build(),
                        manager)) {
            BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
            String line = CompletableFuture.supplyAsync(() -> {
                try {
                    return out.readLine();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }).get(60, TimeUnit.SECONDS);
            KvTransferParams dest = KvTransferParams.parse(line);
            // connect while the worker still answers handshakes, then freeze it
            engine.warmupSegment(dest.engine());
            signal(child.pid(), "STOP");

            PrefillRequest p = prefill.startPrefill("kill-1", 256, dest);
            KvTestSupport.fill(pool, p.cache().blocks(), 5);
            p.finish();
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (prefill.metrics().transferRequests() == 0 && System.nanoTime() < until) {
                Thread.sleep(5);
            }
            Thread.sleep(300);
            assertFalse(p.completion().isDone(), "64 MiB cannot reach a frozen process: the push must be in flight");
            assertEquals(2, pool.allocator().refCount(p.cache().blocks()[0]), "hold + in-flight pin");

            signal(child.pid(), "KILL");
            child.waitFor(10, TimeUnit.SECONDS);
            KvException e = assertThrows(KvException.class, () -> p.await(Duration.ofSeconds(30)));
            assertEquals(KvError.TRANSFER_FAILED, e.error(), e.getMessage());
            assertEquals(0, pool.allocator().usedBlocks(), "prefill freed its blocks");
            assertEquals(1, prefill.metrics().prefillFailed());

            // and it keeps serving
            try (TransferEngine next = KvTestSupport.engine("tcp", Duration.ofSeconds(20));
                    PagedKvPool nextPool = PagedKvPool.allocate(next, BIG);
                    KvConnector decode = KvConnector.create(nextPool,
                            KvConnectorConfig.builder().environment(Map.of()).build(), manager)) {
                DecodeRequest d = decode.expect("kill-2", 256, 256, new int[0]);
                try (PrefillRequest p2 = prefill.startPrefill("kill-2", 256, KvTransferParams.parse(d.params().toJsonString()))) {
                    KvTestSupport.fill(pool, p2.cache().blocks(), 6);
                    p2.finish();
                    assertEquals(64L << 20, d.await(Duration.ofSeconds(30)).bytes());
                    assertNull(KvTestSupport.check(nextPool, d.blocks(), 0, 16, 6));
                }
                d.close();
            }
        } finally {
            child.destroyForcibly();
            child.waitFor(10, TimeUnit.SECONDS);
        }
    }
}
