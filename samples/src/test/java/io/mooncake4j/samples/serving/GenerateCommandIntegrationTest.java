package io.mooncake4j.samples.serving;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.serving.model.ModelSpec;
import io.mooncake4j.samples.cli.JavaCommand;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

/** {@code generate} prints exactly run.c's stdout, colocated and disaggregated. */
class GenerateCommandIntegrationTest {

    record Run(int exit, byte[] stdout, String stderr) {}

    static Run generate(String... args) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        CommandLine cl = Main.commandLine(new PrintWriter(new StringWriter(), true), new PrintWriter(err, true));
        // the same command as Main's, printing into a buffer instead of System.out
        CommandLine gen = new CommandLine(new GenerateCommand(new PrintStream(bytes, true)));
        gen.setOut(cl.getOut());
        gen.setErr(cl.getErr());
        gen.setExecutionExceptionHandler(cl.getExecutionExceptionHandler());
        gen.setParameterExceptionHandler(cl.getParameterExceptionHandler());
        int exit = gen.execute(args);
        return new Run(exit, bytes.toByteArray(), err.toString());
    }

    static String[] args(ModelSpec spec, String... more) {
        List<String> a = new ArrayList<>(spec.asArguments());
        a.addAll(List.of(more));
        return a.toArray(new String[0]);
    }

    @Test
    @Tag("integration")
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void shouldPrintRunCsReferenceOutputColocated() throws Exception {
        // a real process, as bin/mooncake4j runs it: nothing else may reach stdout
        ModelSpec spec = TestModels.stories();
        List<String> cmd = JavaCommand.current();
        cmd.add(Main.class.getName());
        cmd.add("generate");
        cmd.addAll(List.of(args(spec, "--prompt", "Once upon a time", "--steps", "64", "--temperature", "0")));
        Process p = new ProcessBuilder(cmd).start();
        CompletableFuture<byte[]> err = CompletableFuture.supplyAsync(() -> {
            try {
                return p.getErrorStream().readAllBytes();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String stderr = new String(err.get(), StandardCharsets.UTF_8);
        assertEquals(Main.OK, p.exitValue(), stderr);
        assertEquals(TestModels.REFERENCE_64, new String(out, StandardCharsets.UTF_8));
        assertTrue(stderr.contains("achieved tok/s: "), stderr);
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void shouldPrintRunCsReferenceOutputColocatedInThisJvm() {
        ModelSpec spec = TestModels.stories();
        Run r = generate(args(spec, "-i", "Once upon a time", "-n", "64", "-t", "0"));
        assertEquals(Main.OK, r.exit(), r.stderr());
        assertEquals(TestModels.REFERENCE_64, new String(r.stdout(), StandardCharsets.UTF_8));
    }

    @Test
    @Tag("integration")
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void shouldPrintRunCsReferenceOutputDisaggregated() {
        ModelSpec spec = TestModels.stories();
        Run r = generate(args(spec, "-i", "Once upon a time", "-n", "64", "-t", "0", "--disaggregated"));
        assertEquals(Main.OK, r.exit(), r.stderr());
        assertEquals(TestModels.REFERENCE_64, new String(r.stdout(), StandardCharsets.UTF_8));
        assertTrue(r.stderr().contains("achieved tok/s: "), r.stderr());
        assertTrue(r.stderr().contains("KV cache moved by the engine (tcp): 20480 bytes"), r.stderr());
    }

    @Test
    @Tag("integration")
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void shouldPrintTheSameSampledTextDisaggregatedWithATemperature() {
        // the sampler's random stream continues on the decode worker where prefill left it
        ModelSpec spec = TestModels.tinyRandom();
        String[] common = {"-i", "abc", "-n", "40", "-t", "1.0", "-p", "0.9", "-s", "17"};
        Run colocated = generate(args(spec, common));
        List<String> dis = new ArrayList<>(List.of(common));
        dis.add("--disaggregated");
        Run disaggregated = generate(args(spec, dis.toArray(new String[0])));
        assertEquals(Main.OK, colocated.exit(), colocated.stderr());
        assertEquals(Main.OK, disaggregated.exit(), disaggregated.stderr());
        assertTrue(colocated.stdout().length > 4, "something was generated");
        assertEquals(new String(colocated.stdout(), StandardCharsets.ISO_8859_1),
                new String(disaggregated.stdout(), StandardCharsets.ISO_8859_1));
    }
}
