package io.mooncake4j.metadata.etcd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class EtcdSettingsTest {
    private final EtcdMetadataStoreProvider provider = new EtcdMetadataStoreProvider();

    @Test
    void shouldParseEveryEndpointWhenSeveralAreGiven() {
        assertEquals(List.of(URI.create("http://10.0.0.1:2379"), URI.create("http://etcd-b:12379"),
                        URI.create("http://[fd00::5]:2379")),
                EtcdSettings.parseEndpoints("etcd://10.0.0.1:2379, etcd-b:12379,[fd00::5]/"));
    }

    @Test
    void shouldDefaultToPort2379WhenPortIsMissing() {
        assertEquals(List.of(URI.create("http://etcd:2379")), EtcdSettings.parseEndpoints("ETCD://etcd"));
    }

    @Test
    void shouldRejectWithExpectedFormWhenUriIsMalformed() {
        for (String bad : new String[] {"etcd://", "etcd://a:1,,b:2", "etcd://a:99999", "etcd://a b:1",
                "http://a:1", "etcd://a:1/path"}) {
            MooncakeException e = assertThrows(MooncakeException.class, () -> EtcdSettings.parseEndpoints(bad), bad);
            assertEquals(ErrorCode.CONFIGURATION, e.code());
            assertTrue(e.getMessage().contains("etcd://host:port[,host:port...]"), e.getMessage());
        }
    }

    @Test
    void shouldAcceptEtcdUrisAndBareHostPortsButNotOtherStores() {
        assertTrue(provider.accepts("etcd://127.0.0.1:2379"));
        assertTrue(provider.accepts(" etcd://a:1,b:2 "));
        assertTrue(provider.accepts("10.0.0.1:2379"), "Mooncake reads a value without scheme as etcd");
        assertFalse(provider.accepts("P2PHANDSHAKE"));
        assertFalse(provider.accepts("p2phandshake"));
        assertFalse(provider.accepts("http://host:8080/metadata"));
        assertFalse(provider.accepts(null));
        assertFalse(provider.accepts(" "));
        assertFalse(provider.accepts("not a uri"));
    }

    @Test
    void shouldPlaceKeysUnderClusterIdWhenOneIsSet() {
        EtcdKeys plain = new EtcdKeys(null);
        assertEquals("mooncake/rpc_meta/10.0.0.5:15000", plain.rpcMeta("10.0.0.5:15000"));
        assertEquals("mooncake/ram/10.0.0.5:15000", plain.segment("10.0.0.5:15000"));
        EtcdSettings s = EtcdSettings.of("etcd://e:1", config(Map.of(EtcdSettings.CLUSTER_ID, "/prod-7/")));
        EtcdKeys scoped = new EtcdKeys(s.clusterId);
        assertEquals("mooncake/prod-7/rpc_meta/w1", scoped.rpcMeta("w1"));
        assertEquals("mooncake/prod-7/ram/w1", scoped.segment("w1"));
        assertEquals("mooncake/prod-7/custom/w1", scoped.segment("custom/w1"), "Mooncake: a name with / is a path");
    }

    @Test
    void shouldReadSettingsAndNameTheKeyWhenOneIsWrong() {
        EtcdSettings s = EtcdSettings.of("etcd://e:1", config(Map.of(EtcdSettings.LEASE_TTL, "7",
                EtcdSettings.TIMEOUT, "0.5", EtcdSettings.LOCAL_SERVER_NAME, "worker-3")));
        assertEquals(7, s.leaseTtlSeconds);
        assertEquals(500, s.timeout.toMillis());
        assertEquals("worker-3", s.localServerName);
        EtcdSettings defaults = EtcdSettings.of("etcd://e:1", config(Map.of()));
        assertEquals(10, defaults.leaseTtlSeconds);
        assertEquals(5000, defaults.timeout.toMillis());
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> EtcdSettings.of("etcd://e:1", config(Map.of(EtcdSettings.LEASE_TTL, "0"))));
        assertEquals(ErrorCode.CONFIGURATION, e.code());
        assertTrue(e.getMessage().contains(EtcdSettings.LEASE_TTL), e.getMessage());
        assertThrows(MooncakeException.class,
                () -> EtcdSettings.of("etcd://e:1", config(Map.of(EtcdSettings.LOCAL_SERVER_NAME, "a b"))));
    }

    @Test
    void shouldWriteAndReadRpcMetaAsMooncakeDoes() {
        String v = EtcdKeys.rpcMetaValue(InetSocketAddress.createUnresolved("10.0.0.5", 15123));
        assertEquals("{\"ip_or_host_name\":\"10.0.0.5\",\"rpc_port\":15123}", v);
        InetSocketAddress a = EtcdKeys.parseRpcMeta("k", "{\"ip_or_host_name\": \"node1\", \"rpc_port\": 16001}\n");
        assertEquals("node1", a.getHostString());
        assertEquals(16001, a.getPort());
        for (String bad : new String[] {"", "[]", "{\"rpc_port\":1}", "{\"ip_or_host_name\":\"h\",\"rpc_port\":0}",
                "{\"ip_or_host_name\":\"h\",\"rpc_port\":\"x\"}"}) {
            MooncakeException e = assertThrows(MooncakeException.class, () -> EtcdKeys.parseRpcMeta("k", bad), bad);
            assertEquals(ErrorCode.METADATA, e.code());
        }
    }

    private static EngineConfig config(Map<String, String> settings) {
        EngineConfig.Builder b = EngineConfig.builder().environment(Map.of());
        settings.forEach(b::set);
        return b.build();
    }
}
