package io.mooncake4j.samples.serving.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.sun.net.httpserver.HttpServer;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.djl.connector.KvConnectorConfig;
import io.mooncake4j.djl.serving.KvRuntime;
import io.mooncake4j.samples.serving.http.Http;
import io.mooncake4j.samples.serving.model.ModelSpec;
import io.mooncake4j.samples.serving.model.RandomModelSpec;
import io.mooncake4j.samples.serving.model.ServingModel;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The decode worker in this JVM, in front of fake prefill workers: which failures free a request's
 * KV blocks at once (its destination never reached a prefill worker) and which quarantine them
 * (a push may still land), and that a client cannot choose the prefill URL.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DecodeWorkerTest {
    private static final String REQUEST = "{\"prompt\": [1, 40, 41, 42], \"max_tokens\": 4, \"temperature\": 0}";

    static ServingModel model;
    static KvRuntime kv;
    final HttpClient client = Http.newClient(Duration.ofSeconds(5));

    @BeforeAll
    static void start() {
        ServingModel.configureDjl(1);
        model = ServingModel.loadUnchecked(new ModelSpec(null, null, RandomModelSpec.parse("2,2,16,4,32,256"), 7,
                "test"));
        EngineConfig engine = EngineConfig.builder().environment(Map.of()).protocol("tcp")
                .localHostname("127.0.0.1").metadataServer("P2PHANDSHAKE").build();
        // a quarantine far longer than the test, so quarantined blocks are plainly still held
        KvConnectorConfig config = KvConnectorConfig.builder().environment(Map.of())
                .set(KvConnectorConfig.POOL_MB, "1").quarantine(Duration.ofSeconds(300)).build();
        kv = KvRuntime.start(engine, config, model.config(), model.manager());
    }

    @AfterAll
    static void stop() {
        if (kv != null) {
            kv.close();
        }
        if (model != null) {
            model.close();
        }
    }

    @Test
    void shouldFreeTheBlocksAtOnceWhenThePrefillWorkerIsUnreachable() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort(); // closed again: nothing listens there
        }
        try (DecodeWorker w = decode(List.of("http://127.0.0.1:" + port))) {
            long before = quarantines();
            int usedBefore = usedBlocks();
            HttpResponse<String> r = post(w.url(), REQUEST);
            assertEquals(502, r.statusCode(), r.body());
            assertTrue(r.body().contains("unreachable"), r.body());
            assertEquals(usedBefore, usedBlocks(), "the destination never left: no quarantine");
            assertEquals(before, quarantines());
        }
    }

    @Test
    void shouldFreeTheBlocksAtOnceWhenThePrefillWorkerSaysItWillNotPush() throws Exception {
        try (FakePrefill p = new FakePrefill(503, true);
                DecodeWorker w = decode(List.of(p.url()))) {
            long before = quarantines();
            int usedBefore = usedBlocks();
            HttpResponse<String> r = post(w.url(), REQUEST);
            assertEquals(503, r.statusCode(), r.body());
            assertEquals(1, p.calls.get());
            assertEquals(usedBefore, usedBlocks());
            assertEquals(before, quarantines());
        }
    }

    @Test
    void shouldQuarantineTheBlocksWhenAPushMayStillCome() throws Exception {
        try (FakePrefill p = new FakePrefill(500, false);
                DecodeWorker w = decode(List.of(p.url()))) {
            long before = quarantines();
            int usedBefore = usedBlocks();
            HttpResponse<String> r = post(w.url(), REQUEST);
            assertEquals(502, r.statusCode(), r.body());
            assertEquals(before + 1, quarantines());
            assertTrue(usedBlocks() > usedBefore, "the blocks stay out of use");
        }
    }

    @Test
    void shouldCallOnlyItsOwnPrefillWorkers() throws Exception {
        try (FakePrefill own = new FakePrefill(503, true);
                FakePrefill other = new FakePrefill(503, true);
                DecodeWorker w = decode(List.of(own.url() + "/"))) {
            String body = "{\"prompt\": [1, 40], \"max_tokens\": 2, \"kv_prefill_url\": \"" + other.url() + "\"}";
            HttpResponse<String> r = post(w.url(), body);
            assertEquals(400, r.statusCode(), r.body());
            assertTrue(r.body().contains("kv_prefill_url"), r.body());
            assertEquals(0, other.calls.get(), "a client-chosen URL was called");
            assertEquals(0, own.calls.get());
            assertEquals(503, post(w.url(), REQUEST).statusCode());
            assertEquals(1, own.calls.get(), "its own --prefill worker (trailing slash stripped)");
        }
    }

    private static DecodeWorker decode(List<String> prefill) throws IOException {
        return DecodeWorker.start(model, kv, "127.0.0.1", 0, 2, prefill, Duration.ofSeconds(10));
    }

    private static int usedBlocks() {
        return kv.pool().allocator().usedBlocks();
    }

    private static long quarantines() {
        return kv.connector().metrics().quarantines();
    }

    private HttpResponse<String> post(String base, String body) throws Exception {
        return client.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
    }

    /** Answers every {@code /v1/prefill} with an error, with or without the "will not push" header. */
    private static final class FakePrefill implements AutoCloseable {
        final HttpServer server;
        final AtomicInteger calls = new AtomicInteger();

        FakePrefill(int status, boolean noPush) throws IOException {
            server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 16);
            server.createContext("/v1/prefill", ex -> {
                calls.incrementAndGet();
                JsonObject req = JsonParser.parseString(Http.readBody(ex)).getAsJsonObject();
                assertTrue(req.has("kv_transfer_params"), req.toString());
                if (noPush) {
                    ex.getResponseHeaders().set(PrefillWorker.KV_PUSH_HEADER, "none");
                }
                Http.sendJson(ex, status, Http.errorBody(status, "server_error", "fake prefill says no"));
                ex.close();
            });
            server.start();
        }

        String url() {
            return "http://127.0.0.1:" + server.getAddress().getPort();
        }

        @Override
        public void close() {
            server.stop(0);
        }
    }
}
