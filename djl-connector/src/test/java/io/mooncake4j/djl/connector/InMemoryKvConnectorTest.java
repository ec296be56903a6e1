package io.mooncake4j.djl.connector;

import io.mooncake4j.testkit.InMemoryTransportProvider;

/** The connector over the spi test kit's same-JVM transport ({@code test-mem}). */
class InMemoryKvConnectorTest extends AbstractKvConnectorTest {
    @Override
    String protocol() {
        return InMemoryTransportProvider.PROTOCOL;
    }

    @Override
    void stall(String segment) {
        InMemoryTransportProvider.STALLED.add(segment);
    }

    @Override
    void unstall(String segment) {
        InMemoryTransportProvider.STALLED.remove(segment);
    }
}
