package io.mooncake4j.djl.connector;

import io.mooncake4j.testkit.InMemoryTransportProvider;

/** The connector over the spi test kit's same-JVM transport ({@code test-mem}). */
class InMemoryKvConnectorTest extends AbstractKvConnectorTest {
    @Override
    String protocol() {
        return InMemoryTransportProvider.PROTOCOL;
    }

    @Override
    boolean stall(String segment) {
        InMemoryTransportProvider.STALLED.add(segment);
        return true;
    }

    @Override
    void unstall(String segment) {
        InMemoryTransportProvider.STALLED.remove(segment);
    }
}
