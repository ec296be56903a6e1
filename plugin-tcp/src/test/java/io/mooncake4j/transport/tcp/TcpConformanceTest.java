package io.mooncake4j.transport.tcp;

import io.mooncake4j.testkit.AbstractTransportConformanceTest;

/** The transport conformance suite over TCP: two engines in one JVM. */
class TcpConformanceTest extends AbstractTransportConformanceTest {
    @Override
    protected String protocol() {
        return "tcp";
    }
}
