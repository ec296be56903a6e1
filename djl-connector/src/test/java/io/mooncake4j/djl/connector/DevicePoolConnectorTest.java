package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import io.mooncake4j.DeviceMemory;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.KvTestSupport;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.KvPart;
import io.mooncake4j.djl.kv.PagedKvPool;
import io.mooncake4j.djl.llama.LlamaConfig;
import io.mooncake4j.djl.serving.KvRuntime;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.testkit.FakeGpu;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * KV pools in device memory on CPU, over the test kit's {@link FakeGpu} (host memory it calls
 * {@code cuda:0}, copied by its copier thread): the connector's push and pull between pools of one
 * engine (so every block moves through the engine's device copier) from and to device and host
 * pools, bytes asserted; host access through {@link PagedKvPool#write}/{@link PagedKvPool#read};
 * the refusals of host views and of a GPU location without a GPU library; {@code MC_KV_LOCATION}.
 */
@Timeout(60)
class DevicePoolConnectorTest {
    private static final KvLayout LAYOUT = new KvLayout(3, 2, 8, 4, 64, DataType.FLOAT32);
    private static final MemoryLocation GPU = MemoryLocation.cuda(0);
    /** Closed last-in first-out after each test. */
    private final Deque<AutoCloseable> opened = new ArrayDeque<>();
    private final NDManager manager = track(KvTestSupport.newManager());

    @AfterEach
    void closeOpened() throws Exception {
        while (!opened.isEmpty()) {
            opened.pop().close();
        }
    }

    private <T extends AutoCloseable> T track(T c) {
        opened.push(c);
        return c;
    }

    private static EngineConfig engineConfig() {
        return EngineConfig.builder()
                .environment(Map.of())
                .protocol(InMemoryTransportProvider.PROTOCOL)
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(Duration.ofSeconds(10))
                .build();
    }

    private TransferEngine engineWithFakeGpu() {
        return track(FakeGpu.installedFor(() -> TransferEngine.create(engineConfig())));
    }

    private static MemoryLocation location(String name) {
        return name.equals("gpu") ? GPU : MemoryLocation.CPU;
    }

    @ParameterizedTest(name = "{0} -> {1}, {2}")
    @CsvSource({"gpu, gpu, push", "gpu, gpu, pull", "gpu, cpu, push", "gpu, cpu, pull", "cpu, gpu, push",
        "cpu, gpu, pull"})
    void shouldMoveKvBlocksByteExactWhenEitherPoolIsInDeviceMemory(String from, String to, String mode)
            throws Exception {
        TransferEngine engine = engineWithFakeGpu();
        PagedKvPool prefillPool = track(PagedKvPool.allocate(engine, LAYOUT, location(from)));
        PagedKvPool decodePool = track(PagedKvPool.allocate(engine, LAYOUT, location(to)));
        assertEquals(location(from), prefillPool.location());
        assertEquals(location(to), decodePool.location());
        KvConnectorConfig cfg = AbstractKvConnectorTest.config(TransferMode.parse(mode), 20, 20, 1);
        KvConnector prefill = track(KvConnector.create(prefillPool, cfg, manager));
        KvConnector decode = track(KvConnector.create(decodePool, cfg, manager));
        int copiesBefore = FakeGpu.COPY_CALLS.get();

        // decode holds blocks 0..2 so that the request's blocks differ on the two sides
        DecodeRequest spacer = track(decode.expect("spacer", 12, 12, new int[0]));
        PrefillRequest p = prefill.startPrefill("r-" + from + to + mode, 30, null); // 8 blocks
        int[] sourceBlocks = p.cache().blocks();
        KvTestSupport.fill(prefillPool, sourceBlocks, 41);
        KvTransferParams source = AbstractKvConnectorTest.overHttp(p.finish());
        try (DecodeRequest d = decode.fetch(source, 40, new int[0])) {
            KvTransferStats stats = d.await(Duration.ofSeconds(30));
            assertFalse(Arrays.equals(sourceBlocks, Arrays.copyOf(d.blocks(), 8)), "block ids differ on the two sides");
            assertNull(KvTestSupport.check(decodePool, d.blocks(), 0, 8, 41));
            assertEquals(8L * LAYOUT.blockBytes() * LAYOUT.layers() * 2, stats.bytes());
        }
        p.await(Duration.ofSeconds(10));
        spacer.cancel(false); // its destination never left this test: freed at once
        assertTrue(FakeGpu.COPY_CALLS.get() > copiesBefore, "the device copier moved the blocks");
        assertEquals(0, prefillPool.allocator().usedBlocks());
        assertEquals(0, decodePool.allocator().usedBlocks());
    }

    @Test
    void shouldPushIntoADevicePoolWhenDecodeAsksFirst() throws Exception {
        TransferEngine engine = engineWithFakeGpu();
        PagedKvPool prefillPool = track(PagedKvPool.allocate(engine, LAYOUT, GPU));
        PagedKvPool decodePool = track(PagedKvPool.allocate(engine, LAYOUT, GPU));
        KvConnectorConfig cfg = AbstractKvConnectorTest.config(TransferMode.PUSH, 20, 20, 1);
        KvConnector prefill = track(KvConnector.create(prefillPool, cfg, manager));
        KvConnector decode = track(KvConnector.create(decodePool, cfg, manager));

        try (DecodeRequest d = decode.expect("first", 13, 40, new int[0])) {
            PrefillRequest p = prefill.startPrefill("first", 13, AbstractKvConnectorTest.overHttp(d.params()));
            KvTestSupport.fill(prefillPool, p.cache().blocks(), 7);
            p.finish();
            d.await(Duration.ofSeconds(30));
            assertNull(KvTestSupport.check(decodePool, d.blocks(), 0, 4, 7));
            // the check reads through the pool; the fake device memory itself holds the same bytes
            int[] blocks = d.blocks();
            ByteBuffer read = ByteBuffer.allocate(LAYOUT.blockBytes());
            decodePool.read(2, KvPart.VALUE, (long) blocks[3] * LAYOUT.blockBytes(), read);
            ByteBuffer raw = NativeMemory.wrap(decodePool.blockAddress(2, KvPart.VALUE, blocks[3]), LAYOUT.blockBytes());
            assertEquals(read.flip(), raw);
        }
    }

    @Test
    void shouldCopyBytesInAndOutOfADevicePoolThroughTheCopierAcrossStagingChunks() {
        TransferEngine engine = engineWithFakeGpu();
        KvLayout big = new KvLayout(1, 8, 128, 16, 200, DataType.FLOAT16); // 6.25 MiB per (layer, part)
        PagedKvPool pool = track(PagedKvPool.allocate(engine, big, GPU));
        byte[] data = new byte[(int) big.partBytes() - 100];
        new Random(3).nextBytes(data);
        int copiesBefore = FakeGpu.COPY_CALLS.get();

        pool.write(0, KvPart.VALUE, 100, ByteBuffer.wrap(data));

        assertTrue(FakeGpu.COPY_CALLS.get() - copiesBefore >= 2, "two staging chunks, each a device copy");
        byte[] raw = new byte[data.length];
        NativeMemory.wrap(pool.partAddress(0, KvPart.VALUE) + 100, data.length).get(raw);
        assertArrayEquals(data, raw, "the bytes landed where the layout says");
        ByteBuffer back = ByteBuffer.allocate(data.length);
        pool.read(0, KvPart.VALUE, 100, back);
        assertFalse(back.hasRemaining());
        assertArrayEquals(data, back.array());
        byte[] keys = new byte[16];
        pool.read(0, KvPart.KEY, 0, ByteBuffer.wrap(keys));
        assertArrayEquals(new byte[16], keys, "the keys stayed untouched");
    }

    @Test
    void shouldTakeTheLocationOfDeviceMemoryTheCallerRegisteredWhenWrapped() {
        TransferEngine engine = engineWithFakeGpu();
        DeviceMemory mine = track(engine.allocate(LAYOUT.totalBytes(), GPU));
        PagedKvPool pool = PagedKvPool.wrap(engine, mine.address(), mine.length(), LAYOUT);
        assertEquals(GPU, pool.location());
        assertFalse(pool.hasHostViews());
        byte[] data = {1, 2, 3, 4, 5, 6, 7, 8};
        pool.write(1, KvPart.VALUE, 40, ByteBuffer.wrap(data));
        byte[] back = new byte[8];
        pool.read(1, KvPart.VALUE, 40, ByteBuffer.wrap(back));
        assertArrayEquals(data, back);
        pool.close();
        assertTrue(engine.localDescriptor().bufferContaining(mine.address(), mine.length()) != null,
                "the caller's memory stays registered");
    }

    @Test
    void shouldRefuseHostViewsAndOutOfRangeCopiesOnADevicePool() {
        TransferEngine engine = engineWithFakeGpu();
        PagedKvPool pool = track(PagedKvPool.allocate(engine, LAYOUT, GPU));
        assertFalse(pool.hasHostViews());

        KvException view = assertThrows(KvException.class, () -> pool.view(0, KvPart.KEY, 0, 1, manager));
        assertEquals(KvError.INVALID_PARAMS, view.error());
        assertTrue(view.getMessage().contains("cuda:0 memory, which DJL arrays and ByteBuffers cannot wrap"),
                view.getMessage());
        assertTrue(view.getMessage().contains("write/read"), view.getMessage());
        KvException buffer = assertThrows(KvException.class, () -> pool.buffer(0, KvPart.KEY, 0, 1));
        assertEquals(view.getMessage(), buffer.getMessage());

        KvException range = assertThrows(KvException.class,
                () -> pool.write(0, KvPart.KEY, LAYOUT.partBytes() - 4, ByteBuffer.allocate(8)));
        assertEquals(KvError.INVALID_PARAMS, range.error());
        assertTrue(range.getMessage().contains("outside a (layer, part) of " + LAYOUT.partBytes() + " bytes"),
                range.getMessage());
        assertThrows(KvException.class, () -> pool.read(0, KvPart.KEY, -1, ByteBuffer.allocate(1)));
        pool.close();
        KvException closed = assertThrows(KvException.class, () -> pool.read(0, KvPart.KEY, 0, ByteBuffer.allocate(1)));
        assertEquals(KvError.CLOSED, closed.error());
    }

    @Test
    void shouldRefuseACudaPoolNamingWhatToAddWhenNoGpuLibraryIsPresent() {
        TransferEngine engine = track(TransferEngine.create(engineConfig()));
        MooncakeException e = assertThrows(MooncakeException.class, () -> PagedKvPool.allocate(engine, LAYOUT, GPU));
        assertEquals(ErrorCode.REGISTRATION, e.code());
        assertTrue(e.getMessage().contains("io.mooncake4j:mooncake4j-gpu-cuda"), e.getMessage());
        assertTrue(engine.localDescriptor().buffers().isEmpty());
        KvException cpu1 = assertThrows(KvException.class,
                () -> PagedKvPool.allocate(engine, LAYOUT, MemoryLocation.cpu(1)));
        assertTrue(cpu1.getMessage().contains("cpu:0 or cuda:N, not cpu:1"), cpu1.getMessage());
    }

    @Test
    void shouldPlaceTheRuntimesPoolWhereKvLocationSays() {
        TransferEngine engine = engineWithFakeGpu();
        LlamaConfig model = new LlamaConfig(64, 128, 2, 4, 2, 32, 32, true);
        KvConnectorConfig cfg = KvConnectorConfig.fromMap(Map.of("kv_location", "cuda:0", "MC_KV_NUM_BLOCKS", "8"));
        assertEquals(GPU, cfg.location());
        try (KvRuntime runtime = KvRuntime.on(engine, cfg, model, manager)) {
            assertEquals(GPU, runtime.pool().location());
            assertEquals("cuda:0", runtime.describe().get("pool_location").getAsString());
            assertTrue(engine.localDescriptor().buffers().stream()
                    .anyMatch(b -> b.address() == runtime.pool().address() && b.name().equals("cuda:0")));
        }
        assertEquals(MemoryLocation.CPU, KvConnectorConfig.fromMap(Map.of()).location());
        assertEquals(MemoryLocation.cuda(3), KvConnectorConfig.builder().environment(Map.of("MC_KV_LOCATION", "CUDA:3"))
                .build().location());
        for (String bad : new String[] {"gpu0", "*", "cpu:2"}) {
            KvException e = assertThrows(KvException.class,
                    () -> KvConnectorConfig.fromMap(Map.of("MC_KV_LOCATION", bad)));
            assertEquals(KvError.INVALID_PARAMS, e.error());
            assertTrue(e.getMessage().endsWith("MC_KV_LOCATION='" + bad + "' is not where a KV pool can live: use cpu:0 (host memory)"
                    + " or cuda:N (GPU N)"), e.getMessage());
        }
    }
}
