package io.mooncake4j.samples.serving;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.mooncake4j.samples.NetnsHosts;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * PD disaggregation across two "hosts" ({@link NetnsHosts}): the prefill worker on 10.77.0.2, the
 * decode worker on 10.77.0.1, the KV cache crossing the veth pair through the engine; a load
 * generator on the decode host drives requests. Skipped where network namespaces cannot be made.
 */
@Tag("integration")
class TwoHostsServingTest {
    private static Process startAndAwaitReady(ProcessBuilder pb) throws Exception {
        Process p = pb.redirectErrorStream(true).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String ready = CompletableFuture.supplyAsync(() -> {
            try {
                for (String line; (line = out.readLine()) != null; ) {
                    if (line.startsWith("READY ")) {
                        return line;
                    }
                }
            } catch (java.io.IOException e) {
                // the process died: reported below
            }
            return null;
        }).get(90, TimeUnit.SECONDS);
        assertTrue(ready != null, "worker did not start: " + pb.command());
        // keep draining so the worker never blocks on a full pipe
        CompletableFuture.runAsync(() -> {
            try {
                out.transferTo(java.io.Writer.nullWriter());
            } catch (java.io.IOException e) {
                // ends with the process
            }
        });
        return p;
    }

    @Test
    @Timeout(value = 180, unit = TimeUnit.SECONDS)
    void shouldServeWithPrefillAndDecodeOnDifferentHosts() throws Exception {
        NetnsHosts hosts = NetnsHosts.tryCreate("mc4js");
        assumeTrue(hosts != null, "cannot create network namespaces here (needs root and iproute2)");
        Process prefill = null;
        Process decode = null;
        try (hosts) {
            String model = "--random_model=4,2,32";
            prefill = startAndAwaitReady(new ProcessBuilder(hosts.java('b', "prefill", model, "--protocol=tcp",
                    "--local_server_name=" + NetnsHosts.B, "--port=8100", "--exit_on_stdin_close")));
            decode = startAndAwaitReady(new ProcessBuilder(hosts.java('a', "decode", model, "--protocol=tcp",
                    "--local_server_name=" + NetnsHosts.A, "--port=8200",
                    "--prefill=http://" + NetnsHosts.B + ":8100", "--exit_on_stdin_close")));
            Process load = new ProcessBuilder(hosts.java('a', "loadgen", "--url=http://127.0.0.1:8200",
                    "--concurrency=2", "--requests=6", "--max_tokens=12"))
                    .redirectErrorStream(true)
                    .start();
            String out = new String(load.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(load.waitFor(120, TimeUnit.SECONDS), out);
            assertEquals(0, load.exitValue(), out);
            assertTrue(out.contains("completed 6, failed 0"), out);
        } finally {
            for (Process p : new Process[] {decode, prefill}) {
                if (p != null) {
                    p.getOutputStream().close();
                    if (!p.waitFor(10, TimeUnit.SECONDS)) {
                        p.destroyForcibly();
                    }
                }
            }
        }
    }
}
