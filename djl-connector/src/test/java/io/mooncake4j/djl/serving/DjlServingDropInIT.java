package io.mooncake4j.djl.serving;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The serving jar dropped into DJL Serving as docs/djl-serving.md says, loaded the way DJL Serving
 * loads a model ({@link DjlServingStandIn}) in a child JVM that has DJL, Gson and SLF4J but not
 * the connector: the shaded jar ({@code mooncake4j.servingJar}, built in the package phase, hence
 * an integration test run by failsafe) is only in each model's {@code libs/}, or only in the
 * server's {@code deps/}. Prefill and decode models then move the KV cache over TCP and decode
 * must reproduce single-process greedy generation token for token.
 */
@Tag("integration")
@Timeout(300)
class DjlServingDropInIT {
    private static final String PROMPT = "Once upon a time";
    private static final int NEW_TOKENS = 24;
    private static final long LINE_WAIT_S = 120;

    @TempDir
    Path home;

    Path models;
    Path servingJar;
    Process server;
    Writer stdin;
    final BlockingQueue<String> stdout = new LinkedBlockingQueue<>();

    @BeforeEach
    void setUp() {
        models = GreedyReference.findModels();
        assertNotNull(models, "stories260K.bin and tok512.bin are needed: put them in shared/models or pass"
                + " -Dmooncake4j.models=DIR");
        String jar = System.getProperty("mooncake4j.servingJar");
        assertNotNull(jar, "mooncake4j.servingJar is not set: run this test with failsafe (mvn verify), after the"
                + " package phase built the serving jar");
        servingJar = Path.of(jar);
        assertTrue(Files.isRegularFile(servingJar), servingJar + " does not exist: run the package phase first");
    }

    @AfterEach
    void tearDown() throws Exception {
        if (server != null) {
            stdin.close();
            if (!server.waitFor(30, TimeUnit.SECONDS)) {
                server.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    @Test
    void shouldServePrefillAndDecodeWhenTheServingJarIsOnlyInEachModelsLibs() throws Exception {
        Path prefill = model("prefill", true);
        Path decode = model("decode", true);
        List<String> loaded = start(home.resolve("deps"), prefill, decode);
        for (String line : loaded) {
            assertTrue(line.contains(prefill.getFileName() + "/libs/serving.jar")
                    || line.contains(decode.getFileName() + "/libs/serving.jar"),
                    "the translator must come from the model's libs/: " + line);
        }
        assertGenerationSplitsTokenForToken();
    }

    @Test
    void shouldServePrefillAndDecodeWhenTheServingJarIsOnlyInDeps() throws Exception {
        Path deps = Files.createDirectories(home.resolve("deps"));
        Files.copy(servingJar, deps.resolve("mooncake4j-djl-connector-serving.jar"));
        List<String> loaded = start(deps, model("prefill", false), model("decode", false));
        for (String line : loaded) {
            assertTrue(line.contains("deps/mooncake4j-djl-connector-serving.jar"),
                    "the translator must come from deps/: " + line);
        }
        assertGenerationSplitsTokenForToken();
    }

    private void assertGenerationSplitsTokenForToken() throws Exception {
        GreedyReference expected = GreedyReference.generate(models, PROMPT, NEW_TOKENS);
        for (String mode : new String[] {"push", "pull"}) {
            JsonObject preq = new JsonObject();
            preq.addProperty("request_id", "dropin-" + mode);
            preq.addProperty("prompt", PROMPT);
            preq.addProperty("max_new_tokens", NEW_TOKENS);
            preq.addProperty("kv_mode", mode);
            JsonObject presp = call("prefill", preq);
            assertEquals(expected.tokens()[expected.promptLength()], presp.get("first_token").getAsInt(), presp.toString());
            JsonObject dreq = new JsonObject();
            dreq.add("kv_transfer_params", presp.get("kv_transfer_params"));
            JsonObject dresp = call("decode", dreq);
            assertArrayEquals(expected.tokens(), ints(dresp.getAsJsonArray("tokens")), "mode " + mode);
            assertFalse(dresp.get("text").getAsString().isEmpty());
            JsonObject transfer = dresp.getAsJsonObject("transfer");
            assertEquals(mode, transfer.get("mode").getAsString());
            // 5 layers x {K, V} x ceil(prompt / 16) blocks of 16 tokens x 4 KV heads x 8 dims x 4 bytes
            assertEquals(5 * 2L * 16 * 4 * 8 * 4 * ((expected.promptLength() + 15) / 16), transfer.get("bytes").getAsLong(),
                    transfer.toString());
        }
    }

    /** A model folder as docs/djl-serving.md lays it out; the serving jar in its libs/ when asked. */
    private Path model(String role, boolean jarInLibs) throws IOException {
        Path dir = Files.createDirectories(home.resolve("models").resolve(role));
        Files.copy(models.resolve(GreedyReference.CHECKPOINT), dir.resolve(GreedyReference.CHECKPOINT));
        Files.copy(models.resolve(GreedyReference.TOKENIZER), dir.resolve(GreedyReference.TOKENIZER));
        Files.writeString(dir.resolve("serving.properties"), String.join("\n",
                "engine=PyTorch",
                "translator=io.mooncake4j.djl.serving.KvTransferTranslator",
                "blockFactory=ai.djl.nn.IdentityBlockFactory",
                "option.hasParameter=false",
                "role=" + role,
                "checkpoint=" + GreedyReference.CHECKPOINT,
                "tokenizer=" + GreedyReference.TOKENIZER,
                "MC_KV_NUM_BLOCKS=64",
                ""), StandardCharsets.UTF_8);
        if (jarInLibs) {
            Files.copy(servingJar, Files.createDirectories(dir.resolve("libs")).resolve("serving.jar"));
        }
        return dir;
    }

    /** Starts the stand-in server; returns its LOADED lines once it is READY. */
    private List<String> start(Path deps, Path... modelDirs) throws Exception {
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx512m", "-Dai.djl.offline=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                "-cp", childClassPath(), DjlServingStandIn.class.getName(), deps.toString()));
        for (Path m : modelDirs) {
            command.add(m.toString());
        }
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.environment().put("DJL_OFFLINE", "true");
        pb.environment().put("MOONCAKE_PROTOCOL", "tcp");
        pb.environment().put("MOONCAKE_LOCAL_HOSTNAME", "127.0.0.1");
        pb.redirectError(home.resolve("server.log").toFile());
        server = pb.start();
        stdin = new OutputStreamWriter(server.getOutputStream(), StandardCharsets.UTF_8);
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line = r.readLine(); line != null; line = r.readLine()) {
                    stdout.add(line);
                }
            } catch (IOException ignored) {
                // the server closed its output
            }
            stdout.add("EOF");
        }, "stand-in-stdout");
        reader.setDaemon(true);
        reader.start();
        assertEquals("ISOLATED", next(), "the child JVM must not see the connector on its classpath");
        List<String> loaded = new ArrayList<>();
        for (String line = next(); !line.equals("READY"); line = next()) {
            if (!line.startsWith("LOADED ")) {
                fail("the model did not load: " + line + "\n" + log());
            }
            assertTrue(line.startsWith("LOADED " + modelDirs[loaded.size()].getFileName()
                    + " io.mooncake4j.djl.serving.KvTransferTranslator "), line);
            loaded.add(line);
        }
        return loaded;
    }

    private JsonObject call(String model, JsonObject request) throws Exception {
        stdin.write(model + " " + request + "\n");
        stdin.flush();
        String line = next();
        int space = line.indexOf(' ');
        assertEquals("200", line.substring(0, Math.max(0, space)), line + "\n" + log());
        return JsonParser.parseString(line.substring(space + 1)).getAsJsonObject();
    }

    private String next() throws Exception {
        String line = stdout.poll(LINE_WAIT_S, TimeUnit.SECONDS);
        if (line == null) {
            fail("the stand-in server said nothing for " + LINE_WAIT_S + " s\n" + log());
        }
        if (line.equals("EOF")) {
            fail("the stand-in server exited with " + server.waitFor() + "\n" + log());
        }
        return line;
    }

    private String log() throws IOException {
        return Files.readString(home.resolve("server.log"), StandardCharsets.UTF_8);
    }

    /**
     * This JVM's classpath without any Mooncake4j module (DJL, PyTorch, Gson, SLF4J stay), plus a
     * folder holding only the stand-in's class.
     */
    private String childClassPath() throws IOException, URISyntaxException {
        Path testClasses = Path.of(DjlServingStandIn.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Path own = Files.createDirectories(home.resolve("stand-in"));
        Path pkg = Files.createDirectories(own.resolve("io/mooncake4j/djl/serving"));
        Path from = testClasses.resolve("io/mooncake4j/djl/serving");
        try (Stream<Path> s = Files.list(from)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith(DjlServingStandIn.class.getSimpleName()))
                    .collect(Collectors.toList())) {
                Files.copy(p, pkg.resolve(p.getFileName()));
            }
        }
        Path repo = Path.of("").toAbsolutePath().getParent();
        List<String> entries = new ArrayList<>();
        for (String e : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path p = Path.of(e).toAbsolutePath();
            boolean mooncake = p.startsWith(repo) || e.replace(File.separatorChar, '/').contains("/io/mooncake4j/");
            if (!mooncake) {
                entries.add(e);
            }
        }
        entries.add(own.toString());
        return String.join(File.pathSeparator, entries);
    }

    private static int[] ints(JsonArray a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = a.get(i).getAsInt();
        }
        return r;
    }
}
