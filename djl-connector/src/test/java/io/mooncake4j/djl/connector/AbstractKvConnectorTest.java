package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.KvTestSupport;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Prefill-to-decode KV cache transfer between two engines of one JVM, over the transport a subclass
 * names. Every test asserts the bytes that arrived and that both pools end with every block free.
 */
@Timeout(60)
abstract class AbstractKvConnectorTest {
    static final KvLayout LAYOUT = new KvLayout(4, 2, 8, 4, 128, DataType.FLOAT32);
    static NDManager manager;

    final List<AutoCloseable> resources = new ArrayList<>();
    TransferEngine prefillEngine;
    TransferEngine decodeEngine;
    PagedKvPool prefillPool;
    PagedKvPool decodePool;

    /** The protocol both engines use. */
    abstract String protocol();

    /**
     * Makes transfers to a segment hang, none of their bytes delivered, until their deadline or
     * {@link #unstall}. Called before any transfer to that segment.
     */
    abstract void stall(String segment);

    /** Undoes {@link #stall}: held transfers that have not reached their deadline go on. */
    abstract void unstall(String segment);

    /** A new engine with the given transfer timeout, of {@link #protocol()}. */
    TransferEngine newEngine(Duration transferTimeout) {
        return KvTestSupport.engine(protocol(), transferTimeout);
    }

    @BeforeAll
    static void startDjl() {
        manager = KvTestSupport.newManager();
    }

    @AfterAll
    static void stopDjl() {
        manager.close();
    }

    @AfterEach
    void closeAll() throws Exception {
        for (int i = resources.size() - 1; i >= 0; i--) {
            resources.get(i).close();
        }
    }

    <T extends AutoCloseable> T track(T c) {
        resources.add(c);
        return c;
    }

    void engines(Duration transferTimeout, KvLayout prefillLayout, KvLayout decodeLayout) {
        prefillEngine = track(newEngine(transferTimeout));
        decodeEngine = track(newEngine(transferTimeout));
        prefillPool = track(PagedKvPool.allocate(prefillEngine, prefillLayout));
        decodePool = track(PagedKvPool.allocate(decodeEngine, decodeLayout));
    }

    static KvConnectorConfig config(TransferMode mode, double waitSeconds, double unclaimedSeconds, double quarantineSeconds) {
        return KvConnectorConfig.builder()
                .environment(Map.of())
                .mode(mode)
                .waitTimeout(Duration.ofMillis((long) (waitSeconds * 1000)))
                .unclaimedTimeout(Duration.ofMillis((long) (unclaimedSeconds * 1000)))
                .quarantine(Duration.ofMillis((long) (quarantineSeconds * 1000)))
                .build();
    }

    KvConnector connector(PagedKvPool pool, KvConnectorConfig cfg) {
        return track(KvConnector.create(pool, cfg, manager));
    }

    /** Carries parameters as JSON text, as an HTTP request would. */
    static KvTransferParams overHttp(KvTransferParams p) {
        return KvTransferParams.parse(p.toJsonString());
    }

    static void eventually(BooleanSupplier condition, Duration within, String what) throws InterruptedException {
        long end = System.nanoTime() + within.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("not within " + within.toMillis() + " ms: " + what);
            }
            Thread.sleep(5);
        }
    }

    void assertAllFree() throws InterruptedException {
        eventually(() -> prefillPool.allocator().usedBlocks() == 0, Duration.ofSeconds(10),
                "prefill blocks freed: " + prefillPool.allocator());
        eventually(() -> decodePool.allocator().usedBlocks() == 0, Duration.ofSeconds(10),
                "decode blocks freed: " + decodePool.allocator());
    }

    /** Decode first, push: the destination rides to prefill in the app's request. */
    KvTransferStats pushDecodeFirst(KvConnector prefill, KvConnector decode, String rid, int tokens, int capacity,
            int[] prefix, int seed) {
        DecodeRequest d = decode.expect(rid, tokens, capacity, prefix);
        try (PrefillRequest p = prefill.startPrefill(rid, tokens, overHttp(d.params()))) {
            KvTestSupport.fill(prefillPool, p.cache().blocks(), seed);
            p.finish();
            KvTransferStats stats = d.await(Duration.ofSeconds(20));
            int from = d.startToken() / LAYOUT.blockTokens();
            String diff = KvTestSupport.check(decodePool, d.blocks(), from, prefillPool.layout().blocksFor(tokens), seed);
            assertNull(diff, diff);
            KvTransferStats ps = p.await(Duration.ofSeconds(10));
            assertEquals(stats.bytes(), ps.bytes());
            return stats;
        } finally {
            d.close();
        }
    }

    // ------------------------------------------------------------------ flows

    @Test
    void shouldPushDecodeFirstAndFreeBothSides() throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, LAYOUT);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        KvTransferStats s = pushDecodeFirst(prefill, decode, "r1", 10, 20, new int[0], 1);
        assertEquals(TransferMode.PUSH, s.mode());
        assertEquals(3, s.blocks());
        assertEquals(1, s.runs());
        assertEquals(LAYOUT.layers() * 2, s.requests(), "one request per (layer, K/V) for one run");
        assertEquals(LAYOUT.layers() * 2L * 3 * LAYOUT.blockBytes(), s.bytes());
        assertEquals(prefillEngine.localSegmentName(), s.peer());
        assertTrue(s.transferNanos() > 0 && s.totalNanos() >= s.transferNanos(), s.toString());
        assertAllFree();
        assertEquals(1, prefill.metrics().prefillCompleted());
        assertEquals(1, decode.metrics().decodeCompleted());
    }

    @Test
    void shouldFetchAPrefillFirstResultByPush() throws Exception {
        fetchPrefillFirst(TransferMode.PUSH);
    }

    @Test
    void shouldFetchAPrefillFirstResultByPull() throws Exception {
        fetchPrefillFirst(TransferMode.PULL);
    }

    private void fetchPrefillFirst(TransferMode mode) throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, LAYOUT);
        KvConnector prefill = connector(prefillPool, config(mode, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        PrefillRequest p = prefill.startPrefill("r2", 13, null);
        KvTestSupport.fill(prefillPool, p.cache().blocks(), 2);
        KvTransferParams source = overHttp(p.finish());
        assertEquals(mode, source.mode());
        assertEquals(4, source.blockCount());
        try (DecodeRequest d = decode.fetch(source, 40, new int[0])) {
            KvTransferStats s = d.await(Duration.ofSeconds(20));
            assertNull(KvTestSupport.check(decodePool, d.blocks(), 0, 4, 2));
            assertEquals(mode, s.mode());
            assertEquals(LAYOUT.layers() * 2L * 4 * LAYOUT.blockBytes(), s.bytes());
            assertEquals(10, d.blocks().length, "room for 40 positions");
            KvTransferStats ps = p.await(Duration.ofSeconds(10));
            assertEquals(s.bytes(), ps.bytes());
            assertEquals(0, prefillPool.allocator().usedBlocks(), "prefill frees once delivered");
            assertEquals(10, decodePool.allocator().usedBlocks(), "decode holds its blocks until closed");
        }
        assertAllFree();
    }

    @Test
    void shouldCoalesceOnlyRunsContiguousOnBothSides() throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, LAYOUT.withNumBlocks(24));
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        // fragment decode's free list so the request gets blocks 10, 12, 13, 14, 20
        int[] all = decodePool.allocator().allocate(24);
        int[] hole = {10, 12, 13, 14, 20};
        decodePool.allocator().release(hole);
        DecodeRequest d = decode.expect("r3", 5 * 4, 5 * 4, new int[0]);
        assertArrayEquals(hole, d.blocks());
        try (PrefillRequest p = prefill.startPrefill("r3", 20, overHttp(d.params()))) {
            assertArrayEquals(new int[] {0, 1, 2, 3, 4}, p.cache().blocks());
            KvTestSupport.fill(prefillPool, p.cache().blocks(), 3);
            p.finish();
            KvTransferStats s = d.await(Duration.ofSeconds(20));
            assertNull(KvTestSupport.check(decodePool, d.blocks(), 0, 5, 3));
            // 0->10 | 1,2,3->12,13,14 | 4->20
            assertEquals(3, s.runs());
            assertEquals(LAYOUT.layers() * 2 * 3, s.requests());
            assertEquals(5, s.blocks());
        }
        d.close();
        int[] rest = Arrays.stream(all).filter(b -> Arrays.stream(hole).noneMatch(h -> h == b)).toArray();
        decodePool.allocator().release(rest);
        assertAllFree();
    }

    @Test
    void shouldSendOnlyTheBlocksAfterAPrefixHit() throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, LAYOUT);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        // decode already holds positions [0, 8) of this prompt (a shared prefix cache entry)
        int[] prefix = decodePool.allocator().allocate(2);
        KvTestSupport.fill(decodePool, prefix, 4);
        DecodeRequest d = decode.expect("r4", 10, 16, prefix);
        assertEquals(8, d.startToken());
        assertEquals(8, d.params().startToken());
        assertEquals(1, d.params().blockCount(), "only the block of positions [8, 10) is asked for");
        assertEquals(2, decodePool.allocator().refCount(prefix[0]), "the request retains the prefix");
        try (PrefillRequest p = prefill.startPrefill("r4", 10, overHttp(d.params()))) {
            KvTestSupport.fill(prefillPool, p.cache().blocks(), 4);
            p.finish();
            KvTransferStats s = d.await(Duration.ofSeconds(20));
            assertEquals(8, s.startToken());
            assertEquals(1, s.blocks());
            assertEquals(LAYOUT.layers() * 2L * LAYOUT.blockBytes(), s.bytes());
            assertNull(KvTestSupport.check(decodePool, d.blocks(), 0, 3, 4));
            assertArrayEquals(prefix, Arrays.copyOf(d.blocks(), 2));
        }
        d.close();
        assertEquals(1, decodePool.allocator().refCount(prefix[0]), "the prefix owner keeps its reference");
        // a prefix covering every block of the prompt: nothing to move, still acknowledged
        DecodeRequest whole = decode.expect("r5", 8, 12, prefix);
        assertEquals(0, whole.params().blockCount());
        try (PrefillRequest p = prefill.startPrefill("r5", 8, overHttp(whole.params()))) {
            p.finish();
            assertEquals(0, whole.await(Duration.ofSeconds(20)).bytes());
        }
        whole.close();
        decodePool.allocator().release(prefix);
        assertAllFree();
    }

    @Test
    void shouldServeManyConcurrentRequestsInBothModes() throws Exception {
        engines(Duration.ofSeconds(10), LAYOUT, LAYOUT);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PULL, 20, 20, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 20, 20, 1));
        int n = 24;
        ExecutorService pool = Executors.newFixedThreadPool(6);
        try {
            List<Future<KvTransferStats>> results = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int seed = 100 + i;
                String rid = "c" + i;
                int tokens = 5 + (i * 7) % 15;
                results.add(pool.submit(() -> {
                    if (seed % 2 == 0) {
                        return pushDecodeFirst(prefill, decode, rid, tokens, tokens + 4, new int[0], seed);
                    }
                    PrefillRequest p = prefill.startPrefill(rid, tokens, null);
                    KvTestSupport.fill(prefillPool, p.cache().blocks(), seed);
                    KvTransferParams src = overHttp(p.finish());
                    try (DecodeRequest d = decode.fetch(src, tokens + 4, new int[0])) {
                        KvTransferStats s = d.await(Duration.ofSeconds(30));
                        String diff = KvTestSupport.check(decodePool, d.blocks(), 0, LAYOUT.blocksFor(tokens), seed);
                        assertNull(diff, diff);
                        return s;
                    }
                }));
            }
            Set<String> ids = new HashSet<>();
            for (Future<KvTransferStats> f : results) {
                ids.add(f.get().requestId());
            }
            assertEquals(n, ids.size());
        } finally {
            pool.shutdownNow();
        }
        assertAllFree();
        assertEquals(n, decode.metrics().decodeCompleted());
        eventually(() -> prefill.metrics().prefillCompleted() == n, Duration.ofSeconds(10), "prefill side completed");
    }

    @Test
    void shouldMoveA64MiBCacheByPushAndByPull() throws Exception {
        // 32 layers x {K, V} x 256 positions x 8 kv heads x 128 x fp32 = 64 MiB per request
        KvLayout big = new KvLayout(32, 8, 128, 16, 16, DataType.FLOAT32);
        assertEquals(64L << 20, big.totalBytes());
        engines(Duration.ofSeconds(30), big, big);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PULL, 30, 60, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 30, 60, 1));
        for (TransferMode mode : TransferMode.values()) {
            int seed = 60 + mode.ordinal();
            String rid = "big-" + mode.jsonName();
            DecodeRequest d;
            PrefillRequest p;
            if (mode == TransferMode.PUSH) {
                d = decode.expect(rid, 256, 256, new int[0]);
                p = prefill.startPrefill(rid, 256, overHttp(d.params()));
                KvTestSupport.fill(prefillPool, p.cache().blocks(), seed);
                p.finish();
            } else {
                p = prefill.startPrefill(rid, 256, null);
                KvTestSupport.fill(prefillPool, p.cache().blocks(), seed);
                d = decode.fetch(overHttp(p.finish()), 256, new int[0]);
            }
            KvTransferStats s = d.await(Duration.ofSeconds(40));
            assertEquals(64L << 20, s.bytes());
            assertEquals(64, s.requests(), "32 layers x {K, V} x one run");
            String diff = KvTestSupport.check(decodePool, d.blocks(), 0, 16, seed);
            assertNull(diff, diff);
            p.await(Duration.ofSeconds(10));
            d.close();
            KvTestSupport.clear(decodePool, d.blocks());
            assertAllFree();
        }
    }

    // ------------------------------------------------------------------ failures

    @Test
    void shouldFreeBothSidesWhenPrefillAborts() throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, LAYOUT);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 5));
        DecodeRequest d = decode.expect("a1", 10, 10, new int[0]);
        PrefillRequest p = prefill.startPrefill("a1", 10, overHttp(d.params()));
        p.abort("model failed");
        KvException e = assertThrows(KvException.class, () -> d.await(Duration.ofSeconds(10)));
        assertEquals(KvError.PEER_ERROR, e.error());
        assertTrue(e.getMessage().contains("model failed"), e.getMessage());
        assertEquals(KvError.ABORTED, assertThrows(KvException.class, () -> p.await(Duration.ofSeconds(1))).error());
        // the peer's error means no write can still come: decode frees at once, no quarantine
        assertEquals(0, decodePool.allocator().usedBlocks());
        assertAllFree();
    }

    @Test
    void shouldTimeOutOnDecodeAndQuarantineTheBlocks() throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, LAYOUT);
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 0.3, 10, 1.5));
        DecodeRequest d = decode.expect("t1", 10, 10, new int[0]);
        int[] held = d.blocks();
        KvException e = assertThrows(KvException.class, () -> d.await(Duration.ofSeconds(10)));
        assertEquals(KvError.TIMEOUT, e.error());
        // a prefill might still write into them: no reuse until the quarantine ends
        int[] others = decodePool.allocator().tryAllocate(decodePool.allocator().freeBlocks());
        for (int b : others) {
            assertFalse(Arrays.stream(held).anyMatch(h -> h == b), "quarantined block " + b + " reused");
        }
        decodePool.allocator().release(others);
        eventually(() -> decodePool.allocator().usedBlocks() == 0, Duration.ofSeconds(5), "quarantine ends");
        assertEquals(1, decode.metrics().decodeFailed());
        assertEquals(1, decode.metrics().quarantines());
    }

    @Test
    void shouldFreeAtOnceAnUndeliveredRequestAndQuarantineADeliveredOne() throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, LAYOUT);
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1.5));
        // the destination never left this process (e.g. the prefill call could not connect)
        DecodeRequest undelivered = decode.expect("u1", 10, 20, new int[0]);
        assertEquals(5, decodePool.allocator().usedBlocks());
        undelivered.cancel(false);
        assertEquals(0, decodePool.allocator().usedBlocks(), "freed at once");
        assertEquals(KvError.ABORTED, assertThrows(KvException.class,
                () -> undelivered.await(Duration.ofSeconds(1))).error());
        undelivered.close(); // idempotent
        assertEquals(0, decode.metrics().quarantines());
        // one whose destination may have reached a prefill worker keeps the quarantine
        DecodeRequest delivered = decode.expect("u2", 10, 20, new int[0]);
        delivered.cancel(true);
        assertEquals(5, decodePool.allocator().usedBlocks(), "a late push may still land");
        assertEquals(1, decode.metrics().quarantines());
        DecodeRequest closed = decode.expect("u3", 10, 20, new int[0]);
        closed.close();
        assertEquals(2, decode.metrics().quarantines(), "close() assumes delivered");
        eventually(() -> decodePool.allocator().usedBlocks() == 0, Duration.ofSeconds(5), "quarantine ends");
        // a ready request frees its blocks whatever it is told
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        DecodeRequest d = decode.expect("u4", 10, 20, new int[0]);
        PrefillRequest p = prefill.startPrefill("u4", 10, overHttp(d.params()));
        p.finish();
        d.await(Duration.ofSeconds(10));
        d.cancel(true);
        assertEquals(2, decode.metrics().quarantines());
        assertAllFree();
    }

    @Test
    void shouldTreatAFetchedRequestAsDeliveredWhenCancelled() throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, LAYOUT);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        PrefillRequest p = prefill.startPrefill("f1", 10, null);
        KvTransferParams source = overHttp(p.finish());
        String target = decodeEngine.localSegmentName();
        stall(target);
        try {
            DecodeRequest d = decode.fetch(source, 20, new int[0]);
            // the connector itself sent the destination, and prefill's push may be in flight
            d.cancel(false);
            assertEquals(KvError.ABORTED, assertThrows(KvException.class,
                    () -> d.await(Duration.ofSeconds(1))).error());
            assertEquals(1, decode.metrics().quarantines(), "a fetched request is always treated as delivered");
            assertEquals(5, decodePool.allocator().usedBlocks());
        } finally {
            unstall(target);
        }
        assertAllFree();
    }

    @Test
    void shouldWaitForBlocksWhenThePoolIsFull() throws Exception {
        int n = 8;
        KvLayout small = LAYOUT.withNumBlocks(n);
        engines(Duration.ofSeconds(5), small, small);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        int tokens = n * LAYOUT.blockTokens();
        ExecutorService pool = Executors.newCachedThreadPool();
        try {
            // decode: the second request needs the whole pool and waits for the first to free it
            DecodeRequest first = decode.expect("w1", tokens, tokens, new int[0]);
            Future<DecodeRequest> second = pool.submit(
                    () -> decode.expect("w2", tokens, tokens, new int[0], Duration.ofSeconds(10)));
            eventually(() -> decodePool.allocator().waitingAllocations() == 1, Duration.ofSeconds(5), "w2 waits");
            assertFalse(second.isDone());
            first.cancel(false);
            DecodeRequest d2 = second.get(5, java.util.concurrent.TimeUnit.SECONDS);
            assertEquals(n, d2.blocks().length);
            // ...and runs to the end
            try (PrefillRequest p = prefill.startPrefill("w2", tokens, overHttp(d2.params()))) {
                KvTestSupport.fill(prefillPool, p.cache().blocks(), 7);
                p.finish();
                d2.await(Duration.ofSeconds(20));
                assertNull(KvTestSupport.check(decodePool, d2.blocks(), 0, n, 7));
            }
            // a wait that runs out fails with POOL_EXHAUSTED, holding nothing
            long t0 = System.nanoTime();
            KvException e = assertThrows(KvException.class,
                    () -> decode.expect("w3", tokens, tokens, new int[0], Duration.ofMillis(200)));
            assertEquals(KvError.POOL_EXHAUSTED, e.error());
            assertTrue(System.nanoTime() - t0 >= 200_000_000L);
            d2.close();
            assertAllFree();

            // prefill: the same with startPrefill
            PrefillRequest p1 = prefill.startPrefill("w4", tokens, null);
            Future<PrefillRequest> p2 = pool.submit(
                    () -> prefill.startPrefill("w5", tokens, null, Duration.ofSeconds(10)));
            eventually(() -> prefillPool.allocator().waitingAllocations() == 1, Duration.ofSeconds(5), "w5 waits");
            p1.abort("done with it");
            PrefillRequest second2 = p2.get(5, java.util.concurrent.TimeUnit.SECONDS);
            assertEquals(tokens, second2.numTokens());
            // the wait for a known destination runs out: POOL_EXHAUSTED, and the decode side hears so
            DecodeRequest d6 = decode.expect("w6", tokens, tokens, new int[0]);
            KvException pe = assertThrows(KvException.class,
                    () -> prefill.startPrefill("w6", tokens, overHttp(d6.params()), Duration.ofMillis(200)));
            assertEquals(KvError.POOL_EXHAUSTED, pe.error());
            assertEquals(KvError.PEER_ERROR, assertThrows(KvException.class,
                    () -> d6.await(Duration.ofSeconds(10))).error());
            second2.abort("done");
            assertAllFree();
            assertEquals(0, decode.metrics().quarantines());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void shouldStopWaitingForBlocksWhenTheConnectorCloses() throws Exception {
        KvLayout small = LAYOUT.withNumBlocks(4);
        engines(Duration.ofSeconds(5), small, small);
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        DecodeRequest first = decode.expect("c1", 16, 16, new int[0]);
        ExecutorService pool = Executors.newCachedThreadPool();
        try {
            Future<DecodeRequest> second = pool.submit(
                    () -> decode.expect("c2", 16, 16, new int[0], Duration.ofSeconds(30)));
            eventually(() -> decodePool.allocator().waitingAllocations() == 1, Duration.ofSeconds(5), "c2 waits");
            decode.close();
            Throwable t = assertThrows(java.util.concurrent.ExecutionException.class,
                    () -> second.get(5, java.util.concurrent.TimeUnit.SECONDS)).getCause();
            assertEquals(KvError.CLOSED, ((KvException) t).error());
            assertEquals(KvError.CLOSED,
                    assertThrows(KvException.class, () -> first.await(Duration.ofSeconds(1))).error());
        } finally {
            pool.shutdownNow();
        }
        assertAllFree();
    }

    @Test
    void shouldExpireUnclaimedPrefillResults() throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, LAYOUT);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 0.3, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        PrefillRequest p = prefill.startPrefill("x1", 10, null);
        KvTransferParams source = p.finish();
        assertEquals(KvError.EXPIRED, assertThrows(KvException.class, () -> p.await(Duration.ofSeconds(5))).error());
        assertEquals(0, prefillPool.allocator().usedBlocks());
        assertEquals(1, prefill.metrics().prefillExpired());
        // a decode that claims too late is refused at once...
        assertEquals(KvError.EXPIRED, assertThrows(KvException.class, () -> decode.fetch(source, 10, new int[0])).error());
        assertEquals(0, decodePool.allocator().usedBlocks());
        // ...and one whose clock cannot tell hears from prefill that nobody is coming, and frees its blocks
        com.google.gson.JsonObject noClock = source.toJson();
        noClock.remove("expires_at_ms");
        DecodeRequest late = decode.fetch(KvTransferParams.fromJson(noClock), 10, new int[0]);
        assertEquals(KvError.PEER_ERROR, assertThrows(KvException.class,
                () -> late.await(Duration.ofSeconds(10))).error());
        assertAllFree();
    }

    @Test
    void shouldRefuseMismatchedLayoutsAndTellTheDecodeSide() throws Exception {
        engines(Duration.ofSeconds(5), LAYOUT, new KvLayout(4, 2, 8, 8, 64, DataType.FLOAT32));
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        DecodeRequest d = decode.expect("m1", 10, 10, new int[0]);
        KvException e = assertThrows(KvException.class, () -> prefill.startPrefill("m1", 10, overHttp(d.params())));
        assertEquals(KvError.LAYOUT_MISMATCH, e.error());
        assertEquals(KvError.PEER_ERROR, assertThrows(KvException.class, () -> d.await(Duration.ofSeconds(10))).error());
        assertAllFree();
    }

    @Test
    void shouldPinBlocksWhileInFlightAndFreeThemWhenTheTransferTimesOut() throws Exception {
        engines(Duration.ofMillis(2000), LAYOUT, LAYOUT);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        stall(decodeEngine.localSegmentName());
        try {
            DecodeRequest d = decode.expect("s1", 12, 12, new int[0]);
            PrefillRequest p = prefill.startPrefill("s1", 12, overHttp(d.params()));
            int[] mine = p.cache().blocks();
            KvTestSupport.fill(prefillPool, mine, 11);
            p.finish();
            eventually(() -> prefill.metrics().transferRequests() > 0, Duration.ofSeconds(5), "push submitted");
            // every block of the request: the request's hold plus the in-flight pin
            for (int b : mine) {
                assertEquals(2, prefillPool.allocator().refCount(b), "block " + b + " pinned in flight");
            }
            assertFalse(p.completion().isDone(), "the stalled push is still in flight");
            int[] others = prefillPool.allocator().tryAllocate(prefillPool.allocator().freeBlocks());
            for (int b : others) {
                assertFalse(Arrays.stream(mine).anyMatch(m -> m == b), "in-flight block " + b + " reused");
            }
            prefillPool.allocator().release(others);
            for (int b : mine) {
                assertEquals(2, prefillPool.allocator().refCount(b), "block " + b + " still pinned");
            }
            // the engine ends the push at MC_TRANSFER_TIMEOUT; then the pins and the hold go
            KvException pe = assertThrows(KvException.class, () -> p.await(Duration.ofSeconds(10)));
            assertEquals(KvError.TRANSFER_FAILED, pe.error(), pe.getMessage());
            assertTrue(pe.getMessage().contains("TIMEOUT"), pe.getMessage());
            KvException de = assertThrows(KvException.class, () -> d.await(Duration.ofSeconds(10)));
            assertEquals(KvError.PEER_ERROR, de.error(), de.getMessage());
            assertTrue(de.getMessage().contains("TIMEOUT"), "decode hears why: " + de.getMessage());
            assertNotNull(KvTestSupport.check(decodePool, d.blocks(), 0, 3, 11), "the stalled push did not deliver the cache");
            assertAllFree();
            assertEquals(1, prefill.metrics().prefillFailed());
        } finally {
            unstall(decodeEngine.localSegmentName());
        }
    }

    @Test
    void shouldFreePrefillBlocksWhenDecodeDiesMidTransferAndServeTheNext() throws Exception {
        KvLayout big = new KvLayout(32, 8, 128, 16, 16, DataType.FLOAT32);
        engines(Duration.ofSeconds(2), big, big);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 1));
        String dead = decodeEngine.localSegmentName();
        stall(dead);
        try {
            DecodeRequest d = decode.expect("k1", 256, 256, new int[0]);
            PrefillRequest p = prefill.startPrefill("k1", 256, overHttp(d.params()));
            KvTestSupport.fill(prefillPool, p.cache().blocks(), 9);
            p.finish();
            eventually(() -> prefill.metrics().transferRequests() > 0, Duration.ofSeconds(5), "push started");
            killDecodeMidPush(prefill, decode, p);
        } finally {
            unstall(dead);
        }
        assertServesANewDecodeWorker(prefill, big);
    }

    /**
     * Checks that {@code p}'s push is in flight, kills the decode side (connector and engine), and
     * checks that prefill fails the push and frees its blocks.
     */
    void killDecodeMidPush(KvConnector prefill, KvConnector decode, PrefillRequest p) throws InterruptedException {
        assertFalse(p.completion().isDone(), "the push is in flight when decode dies");
        assertEquals(2, prefillPool.allocator().refCount(p.cache().blocks()[0]), "hold + in-flight pin");
        decode.close();
        decodeEngine.close();
        KvException e = assertThrows(KvException.class, () -> p.await(Duration.ofSeconds(20)));
        assertEquals(KvError.TRANSFER_FAILED, e.error(), e.getMessage());
        eventually(() -> prefillPool.allocator().usedBlocks() == 0, Duration.ofSeconds(10), "prefill frees");
        assertEquals(1, prefill.metrics().prefillFailed());
    }

    /** A new decode worker gets a request's KV cache from {@code prefill}, and prefill frees it. */
    void assertServesANewDecodeWorker(KvConnector prefill, KvLayout layout) throws InterruptedException {
        TransferEngine next = track(newEngine(Duration.ofSeconds(10)));
        PagedKvPool nextPool = track(PagedKvPool.allocate(next, layout));
        KvConnector nextDecode = connector(nextPool, config(TransferMode.PUSH, 10, 10, 1));
        int tokens = layout.blockTokens() * 6 + 1;
        DecodeRequest d = nextDecode.expect("next", tokens, tokens, new int[0]);
        try (PrefillRequest p = prefill.startPrefill("next", tokens, overHttp(d.params()))) {
            KvTestSupport.fill(prefillPool, p.cache().blocks(), 10);
            p.finish();
            d.await(Duration.ofSeconds(20));
            String diff = KvTestSupport.check(nextPool, d.blocks(), 0, 7, 10);
            assertNull(diff, diff);
        }
        d.close();
        eventually(() -> prefillPool.allocator().usedBlocks() == 0, Duration.ofSeconds(10), "prefill frees");
    }

    @Test
    void shouldFailAPullFromADeadPrefillAndFreeTheDecodeBlocks() throws Exception {
        engines(Duration.ofSeconds(2), LAYOUT, LAYOUT);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PULL, 10, 10, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 10, 10, 0.2));
        PrefillRequest p = prefill.startPrefill("d1", 10, null);
        KvTransferParams source = overHttp(p.finish());
        prefill.close();
        prefillEngine.close();
        DecodeRequest d = decode.fetch(source, 10, new int[0]);
        KvException e = assertThrows(KvException.class, () -> d.await(Duration.ofSeconds(15)));
        assertEquals(KvError.TRANSFER_FAILED, e.error(), e.toString());
        eventually(() -> decodePool.allocator().usedBlocks() == 0, Duration.ofSeconds(5), "decode frees");
    }
}
