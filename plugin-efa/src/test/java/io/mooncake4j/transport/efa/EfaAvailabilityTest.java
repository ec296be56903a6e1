package io.mooncake4j.transport.efa;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The efa plugin says why it is unavailable when libfabric or the provider is missing. */
@Tag("integration")
@Timeout(120)
class EfaAvailabilityTest {
    private static String probe(String... env) throws Exception {
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        ProcessBuilder pb = new ProcessBuilder(List.of(java, "-Xmx128m", "-cp",
                System.getProperty("java.class.path"), EfaAvailabilityProbe.class.getName()));
        pb.redirectErrorStream(true);
        for (int i = 0; i < env.length; i += 2) {
            pb.environment().put(env[i], env[i + 1]);
        }
        Process p = pb.start();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "probe JVM did not exit");
        return new String(out, StandardCharsets.UTF_8);
    }

    @Test
    void shouldBeUnavailableWithTheDlopenErrorWhenLibfabricIsMissing() throws Exception {
        String out = probe("MC_LIBFABRIC_PATH", "/nonexistent/libfabric.so.1");
        assertTrue(out.contains("available=false"), out);
        assertTrue(out.contains("dlopen(/nonexistent/libfabric.so.1) failed"), out);
        assertTrue(out.contains("MC_LIBFABRIC_PATH"), "says what to do: " + out);
        assertTrue(out.contains("refused=") && out.contains("efa") && out.contains("dlopen"), out);
    }

    @Test
    void shouldBeUnavailableNamingTheProviderWhenItHasNoNic() throws Exception {
        String out = probe("MC_EFA_PROVIDER", "efa");
        assumeFalse(out.contains("available=true"), "this host has an EFA device");
        assertTrue(out.contains("libfabric provider 'efa' offers no RDM endpoint"), out);
        assertTrue(out.contains("MC_EFA_PROVIDER"), "says what to do: " + out);
        assertTrue(out.contains("refused="), out);
    }

    @Test
    void shouldBeAvailableWhenTheProviderIsASoftwareOne() throws Exception {
        String out = probe("MC_EFA_PROVIDER", "tcp;ofi_rxm", "MOONCAKE_DEVICE", "lo");
        assertTrue(out.contains("available=true") && out.contains("engine=efa"), out);
    }

    @Test
    void shouldNotReplaceTcpUnlessNamedWhenTheProviderIsASoftwareOne() throws Exception {
        String out = probe("FI_PROVIDER", "tcp", "MOONCAKE_DEVICE", "lo");
        assertTrue(out.contains("available=true") && out.contains("autoSelectable=false"), out);
        assertTrue(out.contains("unnamed=tcp"), "an engine with no protocol named keeps TCP: " + out);
        assertTrue(out.contains("engine=efa"), "named, efa still runs on the software provider: " + out);
    }
}
