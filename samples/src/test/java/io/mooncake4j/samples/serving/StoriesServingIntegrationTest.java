package io.mooncake4j.samples.serving;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.mooncake4j.samples.cli.CliRun;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.serving.http.CompletionClient;
import io.mooncake4j.samples.serving.http.CompletionRequest;
import io.mooncake4j.samples.serving.http.CompletionResult;
import io.mooncake4j.samples.serving.model.ModelSpec;
import io.mooncake4j.samples.serving.model.ServingModel;
import io.mooncake4j.samples.serving.model.TokenText;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * stories260K served by a prefill JVM and a decode JVM behind a router JVM, the KV cache moved by
 * the engine (tcp), checked against colocated generation in this JVM.
 */
@Tag("integration")
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class StoriesServingIntegrationTest {
    static final List<String> PROMPTS = List.of("Once upon a time", "One day, a little dog",
            "Lily and Ben went to the park", "Tom had a red kite. It was very", "");

    @TempDir static Path logs;
    static LocalCluster cluster;
    static ServingModel model;
    static CompletionClient router;
    static CompletionClient decode;

    @BeforeAll
    static void start() throws Exception {
        if (TestModels.modelsDir().isEmpty()) {
            return; // each test skips itself, with the reason, in running()
        }
        ModelSpec spec = TestModels.stories();
        cluster = LocalCluster.start(spec, List.of("--kv_pool_mb=16", "--http_threads=32"), true, logs, null);
        model = TestModels.load(spec);
        router = new CompletionClient(cluster.routerUrl(), Duration.ofSeconds(120));
        decode = new CompletionClient(cluster.decodeUrl(), Duration.ofSeconds(120));
    }

    @AfterAll
    static void stop() {
        if (cluster != null) {
            cluster.close();
            for (ChildJvm c : cluster.children()) {
                assertTrue(!c.isAlive(), c + " still runs");
            }
        }
        if (model != null) {
            model.close();
        }
    }

    /** Skips the calling test when stories260K is absent. */
    private static void running() {
        TestModels.stories();
    }

    private static JsonObject request(String prompt, int maxTokens, boolean ids) {
        JsonObject b = CompletionRequest.body(null, prompt, maxTokens, 0f, false);
        b.addProperty("return_token_ids", ids);
        return b;
    }

    @Test
    void shouldGenerateExactlyTheColocatedTokensForSeveralPrompts() {
        running();
        boolean stream = false;
        for (String prompt : PROMPTS) {
            int[] expected = TestModels.colocated(model, prompt, 48);
            for (CompletionClient c : List.of(router, decode)) {
                stream = !stream;
                JsonObject body = request(prompt, 48, true);
                CompletionResult r = stream ? c.stream(body, (t, id) -> { }) : c.complete(body);
                assertArrayEquals(expected, r.allTokenIds(), "prompt '" + prompt + "' via " + c.base()
                        + (stream ? " streaming" : ""));
                assertEquals(TokenText.text(model.tokenizer(), expected, r.promptTokenIds().length), r.text());
                assertTrue(r.serverNumber("kv_bytes") > 0, "the KV cache moved: " + r.server());
                assertEquals(expected.length - r.promptTokenIds().length, r.completionTokens());
            }
        }
    }

    @Test
    void shouldAnswerCompletionsThroughTheRouter() throws Exception {
        running();
        HttpResponse<String> resp = post(cluster.routerUrl() + "/v1/completions",
                "{\"prompt\": \"Once upon a time\", \"max_tokens\": 59, \"temperature\": 0}");
        assertEquals(200, resp.statusCode(), resp.body());
        JsonObject o = JsonParser.parseString(resp.body()).getAsJsonObject();
        assertEquals("text_completion", o.get("object").getAsString());
        assertEquals("stories260K", o.get("model").getAsString());
        assertTrue(o.get("id").getAsString().startsWith("cmpl-"));
        JsonObject choice = o.getAsJsonArray("choices").get(0).getAsJsonObject();
        // run.c -n 64 prints the prompt, then 60 tokens of which the last is "ily": 59 gives "...high.\nL"
        String expected = TestModels.REFERENCE_64.substring("Once upon a time".length(),
                TestModels.REFERENCE_64.length() - "ily\n".length());
        assertEquals(expected, choice.get("text").getAsString());
        assertEquals("length", choice.get("finish_reason").getAsString());
        JsonObject usage = o.getAsJsonObject("usage");
        assertEquals(5, usage.get("prompt_tokens").getAsInt());
        assertEquals(59, usage.get("completion_tokens").getAsInt());
        assertEquals(64, usage.get("total_tokens").getAsInt());
        JsonObject figures = o.getAsJsonObject("mooncake4j");
        // 5 prompt positions in one 16-token block: 5 layers x K/V x 16 x 32 floats
        assertEquals(5 * 2 * 16 * 32 * 4, figures.get("kv_bytes").getAsLong());
        assertEquals(10, figures.get("kv_requests").getAsInt());
        assertEquals("tcp", figures.get("kv_protocol").getAsString());
    }

    @Test
    void shouldStreamServerSentEventsEndingWithDone() throws Exception {
        running();
        String body = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 20, \"temperature\": 0, \"stream\": true}";
        HttpResponse<String> resp = post(cluster.routerUrl() + "/v1/completions", body);
        assertEquals(200, resp.statusCode(), resp.body());
        assertTrue(resp.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
        List<String> events = Arrays.stream(resp.body().split("\n\n")).filter(s -> !s.isBlank()).toList();
        assertEquals("data: [DONE]", events.get(events.size() - 1).strip());
        StringBuilder text = new StringBuilder();
        int tokens = 0;
        for (String e : events.subList(0, events.size() - 1)) {
            assertTrue(e.startsWith("data: {"), e);
            JsonObject chunk = JsonParser.parseString(e.substring(6)).getAsJsonObject();
            assertEquals("text_completion", chunk.get("object").getAsString());
            JsonObject choice = chunk.getAsJsonArray("choices").get(0).getAsJsonObject();
            text.append(choice.get("text").getAsString());
            if (choice.get("finish_reason").isJsonNull()) {
                tokens++;
            } else {
                assertEquals("length", choice.get("finish_reason").getAsString());
                assertEquals(20, chunk.getAsJsonObject("usage").get("completion_tokens").getAsInt());
            }
        }
        assertEquals(20, tokens, "one event per token");
        CompletionResult whole = router.complete(request("Once upon a time", 20, false));
        assertEquals(whole.text(), text.toString());
    }

    @Test
    void shouldReportHealthAndModels() {
        running();
        JsonObject h = router.getJson("/health");
        assertEquals(200, h.get("http_status").getAsInt(), h.toString());
        assertEquals("ok", h.get("status").getAsString());
        JsonArray pre = h.getAsJsonArray("prefill");
        JsonArray dec = h.getAsJsonArray("decode");
        assertEquals("ok", pre.get(0).getAsJsonObject().get("status").getAsString());
        assertEquals("ok", dec.get(0).getAsJsonObject().get("status").getAsString());
        assertEquals("tcp", dec.get(0).getAsJsonObject().get("protocol").getAsString());
        JsonObject m = router.getJson("/v1/models");
        assertEquals("stories260K", m.getAsJsonArray("data").get(0).getAsJsonObject().get("id").getAsString());
        JsonObject dh = decode.getJson("/health");
        assertEquals("decode", dh.get("role").getAsString());
        assertNotNull(dh.getAsJsonObject("kv").get("segment"));
    }

    @Test
    void shouldServeManyConcurrentRequestsCorrectly() throws Exception {
        running();
        Map<String, String> expected = new HashMap<>();
        for (String p : DemoCommand.DEFAULT_PROMPTS) {
            int[] t = TestModels.colocated(model, p, 32);
            expected.put(p, TokenText.text(model.tokenizer(), t, model.tokenizer().encode(p, true, false).length));
        }
        LoadGenerator gen = new LoadGenerator(cluster.routerUrl(), DemoCommand.DEFAULT_PROMPTS, 32, 0f, true, null,
                Duration.ofSeconds(120));
        LoadReport report = gen.run(30, 10, null);
        assertEquals(List.of(), report.errors());
        assertEquals(30, report.results().size());
        for (CompletionResult r : report.results()) {
            String prompt = DemoCommand.DEFAULT_PROMPTS.stream()
                    .filter(p -> expected.get(p).equals(r.text()))
                    .findFirst().orElse(null);
            assertNotNull(prompt, "a concurrent answer matches no colocated story: " + r.text());
            assertEquals(32, r.completionTokens());
        }
        // every block went back to both pools
        for (CompletionClient c : List.of(decode, new CompletionClient(cluster.prefillUrl(), Duration.ofSeconds(10)))) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            int used;
            do {
                used = c.getJson("/health").getAsJsonObject("kv").get("used_blocks").getAsInt();
            } while (used != 0 && System.nanoTime() < deadline && sleep());
            assertEquals(0, used, c.base() + " leaks KV blocks");
        }
    }

    @Test
    void shouldRunTheLoadgenCommand() {
        running();
        CliRun r = CliRun.run("loadgen", "--url", cluster.routerUrl(), "--concurrency", "4", "--requests", "8",
                "--max_tokens", "16");
        assertEquals(Main.OK, r.exitCode, r.toString());
        assertTrue(r.out.contains("completed 8, failed 0"), r.out);
        for (String row : new String[] {"p50", "p90", "p99", "TTFT (ms)", "TPOT (ms)", "E2E latency (ms)", "req/s"}) {
            assertTrue(r.out.contains(row), row + " missing:\n" + r.out);
        }
    }

    @Test
    void shouldAnswerOpenAiStyleErrors() throws Exception {
        running();
        HttpResponse<String> r = post(cluster.routerUrl() + "/v1/completions", "{not json");
        assertEquals(400, r.statusCode());
        assertTrue(JsonParser.parseString(r.body()).getAsJsonObject().getAsJsonObject("error").has("message"));
        r = post(cluster.routerUrl() + "/v1/completions", "{\"model\": \"gpt-4\", \"prompt\": \"x\"}");
        assertEquals(404, r.statusCode(), r.body());
        r = post(cluster.routerUrl() + "/v1/completions", "{\"prompt\": [1, 99999]}");
        assertEquals(400, r.statusCode(), r.body());
        HttpResponse<String> get = HttpClient.newHttpClient().send(
                HttpRequest.newBuilder(URI.create(cluster.routerUrl() + "/v1/completions")).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(405, get.statusCode());
        // neither the router nor a decode worker lets a client choose where the decode worker POSTs
        for (String url : List.of(cluster.routerUrl(), cluster.decodeUrl())) {
            r = post(url + "/v1/completions", "{\"prompt\": \"x\", \"kv_prefill_url\": \"http://127.0.0.1:9\"}");
            assertEquals(400, r.statusCode(), r.body());
            assertTrue(r.body().contains("kv_prefill_url"), r.body());
        }
    }

    private static boolean sleep() {
        try {
            Thread.sleep(50);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return true;
    }

    private static HttpResponse<String> post(String url, String body) throws Exception {
        return HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build().send(
                HttpRequest.newBuilder(URI.create(url)).header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }
}
