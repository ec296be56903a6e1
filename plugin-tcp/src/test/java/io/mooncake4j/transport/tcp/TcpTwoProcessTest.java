package io.mooncake4j.transport.tcp;

import io.mooncake4j.testkit.AbstractTwoProcessTransportTest;

/** Transfers to a target engine in another JVM over TCP, including killing it mid-write. */
class TcpTwoProcessTest extends AbstractTwoProcessTransportTest {
    @Override
    protected String protocol() {
        return "tcp";
    }
}
