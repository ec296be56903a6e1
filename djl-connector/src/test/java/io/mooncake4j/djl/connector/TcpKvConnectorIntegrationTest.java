package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.DataType;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvTestSupport;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.KvPart;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.nio.ByteBuffer;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The connector over the real {@code tcp} transport on loopback. A stalled segment is reached
 * through a {@link HoldingTcpProxy} in front of its data port (its descriptor rewritten by {@link
 * ProxiedP2pMetadataStoreProvider}), which holds what the initiator sends; other segments are
 * reached directly.
 */
@Tag("integration")
class TcpKvConnectorIntegrationTest extends AbstractKvConnectorTest {
    @Override
    String protocol() {
        return "tcp";
    }

    @Override
    TransferEngine newEngine(Duration transferTimeout) {
        return TransferEngine.create(EngineConfig.builder()
                .protocol(protocol())
                .localHostname("127.0.0.1")
                .metadataServer(ProxiedP2pMetadataStoreProvider.NAME)
                .transferTimeout(transferTimeout)
                .build());
    }

    @Override
    void stall(String segment) {
        ProxiedP2pMetadataStoreProvider.proxy(segment).holdAfter(0);
    }

    @Override
    void unstall(String segment) {
        ProxiedP2pMetadataStoreProvider.proxy(segment).resume();
    }

    @AfterEach
    void closeProxies() {
        ProxiedP2pMetadataStoreProvider.closeProxies();
    }

    @Test
    void shouldFreePrefillBlocksWhenDecodeDiesAfterPartOfThePushArrived() throws Exception {
        // 32 layers x {K, V} x 16 blocks of 64 KiB: 64 MiB, of which the proxy lets 8 MiB through
        KvLayout big = new KvLayout(32, 8, 128, 16, 16, DataType.FLOAT32);
        long pass = 8L << 20;
        engines(Duration.ofSeconds(30), big, big);
        KvConnector prefill = connector(prefillPool, config(TransferMode.PUSH, 30, 30, 1));
        KvConnector decode = connector(decodePool, config(TransferMode.PUSH, 30, 30, 1));
        HoldingTcpProxy proxy = ProxiedP2pMetadataStoreProvider.proxy(decodeEngine.localSegmentName());
        proxy.holdAfter(pass);
        DecodeRequest d = decode.expect("p1", 256, 256, new int[0]);
        int[] receiving = d.blocks();
        PrefillRequest p = prefill.startPrefill("p1", 256, overHttp(d.params()));
        KvTestSupport.fill(prefillPool, p.cache().blocks(), 12);
        p.finish();
        eventually(() -> proxy.forwardedBytes() == pass, Duration.ofSeconds(20), "8 MiB reach decode: " + proxy);
        eventually(() -> arrivedBlocks(decodePool, receiving, 12) > 0, Duration.ofSeconds(20),
                "some blocks of the push land in decode's memory");
        int arrived = arrivedBlocks(decodePool, receiving, 12);
        int all = big.layers() * 2 * 16;
        assertTrue(arrived * big.blockBytes() <= pass, arrived + " blocks cannot have come in " + pass + " bytes");
        assertTrue(arrived < all, "the push is cut midway: " + arrived + " of " + all + " blocks");
        killDecodeMidPush(prefill, decode, p);
        assertServesANewDecodeWorker(prefill, big);
    }

    /** How many (layer, K/V, block) units of {@code blocks} hold exactly the pattern of {@code seed}. */
    private static int arrivedBlocks(PagedKvPool pool, int[] blocks, int seed) {
        KvLayout l = pool.layout();
        int intsPerToken = l.tokenBytes() / 4;
        int arrived = 0;
        for (int layer = 0; layer < l.layers(); layer++) {
            for (KvPart part : KvPart.values()) {
                for (int i = 0; i < blocks.length; i++) {
                    ByteBuffer b = pool.buffer(layer, part, blocks[i], 1);
                    boolean whole = true;
                    for (int t = 0; t < l.blockTokens() && whole; t++) {
                        for (int e = 0; e < intsPerToken && whole; e++) {
                            whole = b.getInt() == KvTestSupport.pattern(seed, layer, part, i * l.blockTokens() + t, e);
                        }
                    }
                    arrived += whole ? 1 : 0;
                }
            }
        }
        return arrived;
    }
}
