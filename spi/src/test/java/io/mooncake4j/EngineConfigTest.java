package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

class EngineConfigTest {
    @Test
    void shouldReadMooncakeNamesWithDefaults() {
        EngineConfig c = EngineConfig.builder().environment(Map.of()).build();
        assertNull(c.protocol());
        assertEquals("P2PHANDSHAKE", c.metadataServer());
        assertEquals(Duration.ofSeconds(30), c.transferTimeout());
        assertEquals(15000, c.minRpcPort());
        assertEquals(17000, c.maxRpcPort());
        assertEquals(4, c.tcpLanesPerPeer());
        assertEquals(1 << 20, c.handshakeMaxLength());
    }

    @Test
    void shouldLetExplicitWinOverEnvironment() {
        EngineConfig c = EngineConfig.builder()
                .environment(Map.of("MOONCAKE_PROTOCOL", "EFA", "MC_TRANSFER_TIMEOUT", "2.5",
                        "MOONCAKE_TE_META_DATA_SERVER", "etcd://h:2379"))
                .build();
        assertEquals("efa", c.protocol());
        assertEquals(Duration.ofMillis(2500), c.transferTimeout());
        assertEquals("etcd://h:2379", c.metadataServer(), "Mooncake's alias is honoured");
        EngineConfig e = EngineConfig.builder().environment(Map.of("MOONCAKE_PROTOCOL", "efa")).protocol("tcp").build();
        assertEquals("tcp", e.protocol());
        assertEquals("explicit setting", e.sourceOf(EngineConfig.PROTOCOL));
    }

    @Test
    void shouldExplainBadValues() {
        EngineConfig c = EngineConfig.builder().environment(Map.of("MC_TCP_LANES_PER_PEER", "many", "MC_TRANSFER_TIMEOUT", "-1")).build();
        MooncakeException e = assertThrows(MooncakeException.class, c::tcpLanesPerPeer);
        assertTrue(e.getMessage().contains("MC_TCP_LANES_PER_PEER='many' (environment variable MC_TCP_LANES_PER_PEER)"), e.getMessage());
        assertThrows(MooncakeException.class, c::transferTimeout);
    }

    @Test
    void shouldReadTheBindAddressOrNullForEveryInterface() throws Exception {
        assertNull(EngineConfig.builder().environment(Map.of()).build().tcpBindAddress());
        EngineConfig c = EngineConfig.builder().environment(Map.of("MC_TCP_BIND_ADDRESS", "127.0.0.1")).build();
        assertEquals(InetAddress.getByName("127.0.0.1"), c.tcpBindAddress());
        EngineConfig bad = EngineConfig.builder().environment(Map.of()).set(EngineConfig.TCP_BIND_ADDRESS, "[::1").build();
        MooncakeException e = assertThrows(MooncakeException.class, bad::tcpBindAddress);
        assertEquals(ErrorCode.CONFIGURATION, e.code());
        assertTrue(e.getMessage().contains("MC_TCP_BIND_ADDRESS='[::1' (explicit setting) does not resolve"), e.getMessage());
    }

    @Test
    void shouldParseLocations() {
        assertEquals(MemoryLocation.cuda(3), MemoryLocation.parse("cuda:3"));
        assertEquals(MemoryLocation.CPU, MemoryLocation.parse("cpu:0"));
        assertEquals(MemoryLocation.ANY, MemoryLocation.parse("*"));
        assertThrows(MooncakeException.class, () -> MemoryLocation.parse("gpu0"));
        assertThrows(MooncakeException.class, () -> MemoryLocation.parse("tpu:1"));
    }
}
