package io.mooncake4j.djl.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvTestSupport;
import io.mooncake4j.djl.llama.ContiguousKvCache;
import io.mooncake4j.djl.llama.LlamaConfig;
import io.mooncake4j.djl.llama.LlamaModel;
import io.mooncake4j.djl.llama.LlamaWeights;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.testkit.FakeGpu;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The paged cache over a host pool (array views of registered memory) and, where the tests take a
 * location, over a pool in device memory too (the test kit's {@link FakeGpu}: positions copied in
 * and out through the engine's device copier): the same results either way.
 */
@Timeout(60)
class PagedKvCacheTest {
    private static TransferEngine engine;
    private static NDManager manager;
    private static PagedKvPool pool;
    private static final KvLayout LAYOUT = new KvLayout(2, 2, 4, 4, 8, DataType.FLOAT32);

    @BeforeAll
    static void setUp() {
        manager = KvTestSupport.newManager();
        engine = FakeGpu.installedFor(() -> KvTestSupport.engine("test-mem", Duration.ofSeconds(5)));
        pool = PagedKvPool.allocate(engine, LAYOUT);
    }

    @AfterAll
    static void tearDown() {
        pool.close();
        engine.close();
        manager.close();
    }

    @Test
    void shouldRegisterTheWholeCacheOnceAsOneBuffer() {
        long inside = engine.localDescriptor().buffers().stream()
                .filter(b -> b.address() <= pool.address() && pool.address() + LAYOUT.totalBytes() <= b.address() + b.length())
                .count();
        assertEquals(1, inside);
        assertEquals(pool.address() + LAYOUT.blockOffset(1, KvPart.VALUE, 3), pool.blockAddress(1, KvPart.VALUE, 3));
    }

    @Test
    void shouldShareMemoryBetweenRegisteredBlocksAndNdArrays() {
        try (NDManager m = manager.newSubManager()) {
            NDArray view = pool.view(1, KvPart.VALUE, 2, 2, m);
            assertEquals(new Shape(8, 8), view.getShape());
            ByteBuffer mem = pool.buffer(1, KvPart.VALUE, 2, 2);
            for (int i = 0; i < 64; i++) {
                mem.putFloat(i * 4, i + 0.5f);
            }
            float[] seen = view.toFloatArray();
            for (int i = 0; i < 64; i++) {
                assertEquals(i + 0.5f, seen[i], "the array must see bytes written to registered memory");
            }
            view.set(new NDIndex(5, 3), -7f);
            assertEquals(-7f, mem.getFloat((5 * 8 + 3) * 4), "the registered memory must see writes to the array");
            ByteBuffer direct = view.toByteBuffer(true);
            assertTrue(direct.isDirect());
            assertEquals(pool.blockAddress(1, KvPart.VALUE, 2), NativeMemory.address(direct),
                    "toByteBuffer(true) must be a view of the block, not a copy");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu:0", "cuda:0"})
    void shouldWriteAndReadPositionsThroughAFragmentedBlockTable(String location) {
        int[] table = {5, 6, 1, 7};
        try (NDManager m = manager.newSubManager();
                PagedKvPool pool = PagedKvPool.allocate(engine, LAYOUT, MemoryLocation.parse(location));
                PagedKvCache cache = pool.cache(table, m)) {
            assertEquals(3, cache.memoryRuns());
            assertEquals(16, cache.capacity());
            int kvDim = LAYOUT.kvDim();
            float[][] k = new float[2][14 * kvDim];
            float[][] v = new float[2][14 * kvDim];
            Random rnd = new Random(1);
            for (int l = 0; l < 2; l++) {
                for (int i = 0; i < k[l].length; i++) {
                    k[l][i] = rnd.nextFloat();
                    v[l][i] = rnd.nextFloat();
                }
                // positions [0, 6) then [6, 14): the second write spans three runs
                for (int[] span : new int[][] {{0, 6}, {6, 14}}) {
                    int n = span[1] - span[0];
                    float[] ks = java.util.Arrays.copyOfRange(k[l], span[0] * kvDim, span[1] * kvDim);
                    float[] vs = java.util.Arrays.copyOfRange(v[l], span[0] * kvDim, span[1] * kvDim);
                    cache.write(l, span[0], m.create(ks, new Shape(n, kvDim)), m.create(vs, new Shape(n, kvDim)));
                }
            }
            for (int l = 0; l < 2; l++) {
                assertArrayEquals(java.util.Arrays.copyOf(k[l], 14 * kvDim), cache.keys(l, 14, m).toFloatArray());
                assertArrayEquals(java.util.Arrays.copyOf(v[l], 9 * kvDim), cache.values(l, 9, m).toFloatArray());
                assertArrayEquals(java.util.Arrays.copyOf(k[l], 3 * kvDim), cache.keys(l, 3, m).toFloatArray());
                // position 9 is row 1 of table[2] = block 1
                ByteBuffer b = ByteBuffer.allocate(LAYOUT.blockBytes()).order(ByteOrder.LITTLE_ENDIAN);
                pool.read(l, KvPart.KEY, LAYOUT.blockBytes(), b);
                assertEquals(k[l][9 * kvDim + 2], b.getFloat((1 * kvDim + 2) * 4));
            }
            assertThrows(IndexOutOfBoundsException.class, () -> cache.keys(0, 17, m));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu:0", "cuda:0"})
    void shouldStoreFloat16AndReturnFloat32(String location) {
        KvLayout half = new KvLayout(1, 1, 4, 2, 4, DataType.FLOAT16);
        try (PagedKvPool p = PagedKvPool.allocate(engine, half, MemoryLocation.parse(location));
                NDManager m = manager.newSubManager();
                PagedKvCache cache = p.newCache(3, m)) {
            float[] k = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
            float[] v = {-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12};
            cache.write(0, 0, m.create(k, new Shape(3, 4)), m.create(v, new Shape(3, 4)));
            NDArray keys = cache.keys(0, 3, m);
            assertEquals(DataType.FLOAT32, keys.getDataType());
            assertArrayEquals(k, keys.toFloatArray());
            assertArrayEquals(v, cache.values(0, 3, m).toFloatArray());
            assertEquals(2, p.allocator().usedBlocks());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu:0", "cuda:0"})
    void shouldGiveTheModelTheSameLogitsAsAContiguousCache(String location) {
        LlamaConfig config = new LlamaConfig(32, 64, 2, 4, 2, 40, 64, true);
        KvLayout layout = new KvLayout(2, 2, 8, 4, 16, DataType.FLOAT32);
        int[] prompt = {1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 2};
        try (NDManager m = manager.newSubManager();
                LlamaWeights w = LlamaWeights.random(config, 7, m);
                LlamaModel model = new LlamaModel(w);
                PagedKvPool p = PagedKvPool.allocate(engine, layout, MemoryLocation.parse(location));
                ContiguousKvCache ref = model.newCache(20);
                PagedKvCache paged = p.cache(new int[] {9, 3, 4, 12, 0}, m)) {
            assertArrayEquals(model.forwardLogits(prompt, 0, ref), model.forwardLogits(prompt, 0, paged), 1e-5f);
            for (int pos = prompt.length; pos < 20; pos++) {
                assertArrayEquals(model.step(pos % 40, pos, ref), model.step(pos % 40, pos, paged), 1e-5f, "pos " + pos);
            }
        }
    }
}
