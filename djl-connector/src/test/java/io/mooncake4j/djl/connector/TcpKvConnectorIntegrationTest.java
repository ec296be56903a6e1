package io.mooncake4j.djl.connector;

import org.junit.jupiter.api.Tag;

/** The connector over the real {@code tcp} transport on loopback. */
@Tag("integration")
class TcpKvConnectorIntegrationTest extends AbstractKvConnectorTest {
    @Override
    String protocol() {
        return "tcp";
    }

    @Override
    boolean stall(String segment) {
        return false;
    }

    @Override
    void unstall(String segment) {}
}
