package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.DataType;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.KvPart;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class KvTransferParamsTest {
    private static final KvLayout LAYOUT = new KvLayout(2, 2, 4, 4, 64, DataType.FLOAT32);

    /** A decode destination for request "r": 8 positions from 0 in blocks 1 and 2. */
    static KvTransferParams destination() {
        return dest(8, 0, new int[] {1, 2});
    }

    private static KvTransferParams dest(int numTokens, int startToken, int[] blocks) {
        return new KvTransferParams("r", KvTransferParams.Role.DECODE, TransferMode.PUSH, "127.0.0.1:15001", "kv-1",
                numTokens, startToken, blocks, LAYOUT, new long[] {4096, 8192}, new long[] {12288, 16384}, 1000,
                1_800_000_000_000L, null);
    }

    @Test
    void shouldRoundTripThroughJsonKeepingApplicationFields() {
        KvTransferParams p = dest(10, 4, new int[] {7, 9}).withExtra("first_token", new JsonPrimitive(42));
        KvTransferParams back = KvTransferParams.parse(p.toJsonString());
        assertEquals("r", back.requestId());
        assertEquals(KvTransferParams.Role.DECODE, back.role());
        assertEquals(TransferMode.PUSH, back.mode());
        assertEquals(10, back.numTokens());
        assertEquals(4, back.startToken());
        assertArrayEquals(new int[] {7, 9}, back.blockIds());
        assertEquals(LAYOUT, back.layout());
        assertEquals(8192, back.base(1, KvPart.KEY));
        assertEquals(12288, back.base(0, KvPart.VALUE));
        assertEquals(1000, back.expiresInMillis());
        assertEquals(1_800_000_000_000L, back.expiresAtMillis());
        assertEquals(42, back.extra().get("first_token").getAsInt());
        assertEquals(p.toJson(), back.toJson());
    }

    @Test
    void shouldRejectBlockCountsThatDoNotCoverThePromptFromTheStartToken() {
        // positions [4, 10) of 4-position blocks need 2 blocks
        assertEquals(KvError.INVALID_PARAMS, assertThrows(KvException.class, () -> dest(10, 4, new int[] {1})).error());
        assertEquals(KvError.INVALID_PARAMS,
                assertThrows(KvException.class, () -> dest(10, 3, new int[] {1, 2})).error(), "start not block aligned");
        assertEquals(0, dest(8, 8, new int[0]).blockCount(), "a whole-prompt prefix hit asks for nothing");
    }

    @Test
    void shouldRejectMalformedJsonWithACode() {
        assertEquals(KvError.INVALID_PARAMS, assertThrows(KvException.class, () -> KvTransferParams.parse("{")).error());
        JsonObject o = dest(10, 4, new int[] {7, 9}).toJson();
        o.remove("engine");
        KvException e = assertThrows(KvException.class, () -> KvTransferParams.fromJson(o));
        assertTrue(e.getMessage().contains("engine"), e.getMessage());
        assertThrows(KvException.class, () -> dest(10, 4, new int[] {7, 9}).withExtra("block_ids", new JsonPrimitive(1)));
    }

    @Test
    void shouldReadConnectorSettingsFromModelArgumentsInAnySpelling() {
        KvConnectorConfig c = KvConnectorConfig.fromMap(Map.of(
                "kv_mode", "pull", "MC_KV_BLOCK_TOKENS", "32", "mc.kv.num.blocks", "100", "option.kv_dtype", "fp16",
                "MC_KV_UNCLAIMED_TIMEOUT", "0.5", "role", "decode"));
        assertEquals(TransferMode.PULL, c.mode());
        assertEquals(32, c.blockTokens());
        assertEquals(100, c.numBlocks());
        assertEquals(DataType.FLOAT16, c.dataType());
        assertEquals(Duration.ofMillis(500), c.unclaimedTimeout());
        assertEquals(Duration.ofSeconds(32), c.quarantine(Duration.ofSeconds(30)));
        KvLayout l = c.layout(5, 4, 8);
        assertEquals(100, l.numBlocks());
        KvConnectorConfig defaults = KvConnectorConfig.builder().environment(Map.of()).build();
        assertEquals(TransferMode.PUSH, defaults.mode());
        assertEquals(Duration.ofSeconds(120), defaults.unclaimedTimeout());
        long total = defaults.layout(5, 4, 8).totalBytes();
        long perBlock = 5 * 2L * 16 * 32 * 4;
        assertTrue(total <= 256L << 20 && total > (256L << 20) - perBlock, "as many blocks as fit in 256 MiB: " + total);
        assertThrows(KvException.class, () -> KvConnectorConfig.fromMap(Map.of("MC_KV_DTYPE", "bf16")));
    }

    @Test
    void shouldReadSettingsThroughTheEngineConfigLayering() {
        // explicit over environment over system property, as EngineConfig reads them
        Map<String, String> env = Map.of("MC_KV_BLOCK_TOKENS", "8", "MC_KV_IO_THREADS", "3", "MC_KV_ALLOC_WAIT", "2.5");
        KvConnectorConfig c = KvConnectorConfig.builder().environment(env).blockTokens(32).build();
        assertEquals(32, c.blockTokens());
        assertEquals(3, c.ioThreads());
        assertEquals(Duration.ofMillis(2500), c.allocWait());
        assertEquals("explicit setting", c.settings().sourceOf(KvConnectorConfig.BLOCK_TOKENS));
        assertEquals("environment variable MC_KV_IO_THREADS", c.settings().sourceOf(KvConnectorConfig.IO_THREADS));
        String key = "mc.kv.prefix.cache.blocks";
        String saved = System.getProperty(key);
        System.setProperty(key, "7");
        try {
            assertEquals(7, KvConnectorConfig.builder().environment(Map.of()).build().prefixCacheBlocks());
        } finally {
            if (saved == null) {
                System.clearProperty(key);
            } else {
                System.setProperty(key, saved);
            }
        }
        // the allocation wait: off by default, 0 allowed, from any spelling
        assertEquals(Duration.ZERO, KvConnectorConfig.builder().environment(Map.of()).build().allocWait());
        assertEquals(Duration.ZERO, KvConnectorConfig.fromMap(Map.of("kv_alloc_wait", "0")).allocWait());
        assertEquals(Duration.ofMillis(250), KvConnectorConfig.fromMap(Map.of("option.kv_alloc_wait", "0.25")).allocWait());
        // a malformed value names its key and where it came from
        for (Map<String, String> bad : List.of(Map.of("kv_block_tokens", "many"), Map.of("MC_KV_ALLOC_WAIT", "-1"),
                Map.of("mc.kv.wait.timeout", "soon"))) {
            MooncakeException e = assertThrows(MooncakeException.class, () -> KvConnectorConfig.fromMap(bad));
            String k = KvConnectorConfig.canonicalKey(bad.keySet().iterator().next());
            assertTrue(e.getMessage().contains(k) && e.getMessage().contains("explicit setting"), e.getMessage());
        }
    }
}
