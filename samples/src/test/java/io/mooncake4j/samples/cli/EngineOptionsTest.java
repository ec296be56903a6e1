package io.mooncake4j.samples.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.EngineConfig;
import org.junit.jupiter.api.Test;

class EngineOptionsTest {
    @Test
    void shouldParseHostWithAndWithoutPort() {
        assertEquals(new EngineOptions.HostPort("10.0.0.2", 15123), EngineOptions.HostPort.parse("10.0.0.2:15123"));
        assertEquals(new EngineOptions.HostPort("node-1", 0), EngineOptions.HostPort.parse("node-1"));
        assertEquals(new EngineOptions.HostPort("fe80::1", 15123), EngineOptions.HostPort.parse("[fe80::1]:15123"));
        assertEquals(new EngineOptions.HostPort("fe80::1", 0), EngineOptions.HostPort.parse("fe80::1"));
        assertThrows(IllegalArgumentException.class, () -> EngineOptions.HostPort.parse("host:99999"));
        assertThrows(IllegalArgumentException.class, () -> EngineOptions.HostPort.parse("[fe80::1"));
    }

    @Test
    void shouldMapFlagsToEngineSettings() {
        EngineOptions o = new EngineOptions().protocol("TCP").localServerName("127.0.0.1:15555");
        o.metadataServer = "P2PHANDSHAKE";
        o.deviceName = "rdmap0s6";
        EngineConfig c = o.config();
        assertEquals("tcp", c.protocol());
        assertEquals("127.0.0.1", c.localHostname());
        assertEquals(15555, c.minRpcPort());
        assertEquals(15555, c.maxRpcPort());
        assertEquals("P2PHANDSHAKE", c.metadataServer());
        assertEquals("rdmap0s6", c.device());
    }

    @Test
    void shouldLeaveAnEnvironmentProtocolInTheEnvironmentSoErrorsNameItsSource() {
        assumeTrue(System.getenv(EngineConfig.PROTOCOL) == null, "MOONCAKE_PROTOCOL is set: it would win over the property");
        String key = EngineConfig.propertyName(EngineConfig.PROTOCOL);
        System.setProperty(key, "efa");
        try {
            EngineConfig fromEnvironment = new EngineOptions().config();
            assertEquals("efa", fromEnvironment.protocol());
            assertEquals("system property " + key, fromEnvironment.sourceOf(EngineConfig.PROTOCOL));

            EngineConfig fromFlag = new EngineOptions().protocol("tcp").config();
            assertEquals("tcp", fromFlag.protocol());
            assertEquals("explicit setting", fromFlag.sourceOf(EngineConfig.PROTOCOL));
        } finally {
            System.clearProperty(key);
        }
    }

    @Test
    void shouldLetTheEngineChooseWithAutoDiscovery() {
        EngineOptions o = new EngineOptions().protocol("tcp");
        o.autoDiscovery = true;
        assertNull(o.protocol());
    }
}
