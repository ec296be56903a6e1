package io.mooncake4j.samples;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferEngine;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

/**
 * The transports the fault and soak tests run over: tcp always, efa where its plugin is available
 * (on a host without EFA hardware, libfabric's software provider: {@code MC_EFA_PROVIDER='tcp;ofi_rxm'}).
 * The system property {@value #PROPERTY} narrows the parameterized cases (samples' {@code
 * efa-software-provider} surefire execution runs only efa there).
 */
public final class Transports {
    /** The protocols to test, comma separated; default {@code tcp,efa}. */
    public static final String PROPERTY = "mooncake4j.test.transports";
    private static final List<String> KNOWN = List.of("tcp", "efa");
    private static final Map<String, String> WHY_NOT = new ConcurrentHashMap<>();

    private Transports() {}

    /** Every protocol the tests are written for (a {@code @MethodSource}). */
    public static Stream<String> all() {
        return Stream.of(System.getProperty(PROPERTY, String.join(",", KNOWN)).split(",")).map(String::trim)
                .filter(p -> !p.isEmpty());
    }

    /** Every protocol the tests know that is available here, whatever {@value #PROPERTY} says. */
    public static List<String> available() {
        return KNOWN.stream().filter(p -> WHY_NOT.computeIfAbsent(p, Transports::probe).isEmpty()).toList();
    }

    /** Skips the test, saying why, unless an engine can be made with {@code protocol} here. */
    public static void assumeAvailable(String protocol) {
        String why = WHY_NOT.computeIfAbsent(protocol, Transports::probe);
        assumeTrue(why.isEmpty(), () -> "the " + protocol + " transport is not available here: " + why
                + ("efa".equals(protocol) ? " (on a host without EFA, set MC_EFA_PROVIDER='tcp;ofi_rxm')" : ""));
    }

    private static String probe(String protocol) {
        try (TransferEngine e = TransferEngine.create(
                EngineConfig.builder().protocol(protocol).localHostname("127.0.0.1").build())) {
            return e.protocol().equals(protocol) ? "" : "the engine chose " + e.protocol();
        } catch (MooncakeException e) {
            return e.getMessage();
        }
    }
}
