package io.mooncake4j.transport.efa;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferEngine;

/**
 * Child JVM for {@link EfaAvailabilityTest}: prints whether efa is available and why not, and what
 * an engine asked for efa says; settings come from the environment the test gives it.
 */
public final class EfaAvailabilityProbe {
    private EfaAvailabilityProbe() {}

    public static void main(String[] args) {
        EfaTransportProvider p = new EfaTransportProvider();
        EngineConfig environment = EngineConfig.fromEnvironment();
        Throwable cause = p.unavailabilityCause(environment);
        System.out.println("available=" + (cause == null));
        System.out.println("cause=" + cause);
        System.out.println("autoSelectable=" + p.isAutoSelectable(environment));
        try (TransferEngine e = TransferEngine.create(EngineConfig.builder()
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .build())) {
            System.out.println("unnamed=" + e.protocol());
        } catch (MooncakeException e) {
            System.out.println("unnamed refused=" + e.getMessage());
        }
        try (TransferEngine e = TransferEngine.create(EngineConfig.builder()
                .protocol("efa")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .build())) {
            System.out.println("engine=" + e.protocol());
        } catch (MooncakeException e) {
            System.out.println("refused=" + e.getMessage());
        }
    }
}
