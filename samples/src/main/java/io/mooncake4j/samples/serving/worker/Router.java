package io.mooncake4j.samples.serving.worker;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.mooncake4j.samples.serving.http.Http;
import io.mooncake4j.samples.serving.http.Http.HttpError;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The router, the service clients talk to: {@code POST /v1/completions} picks a decode worker (the
 * least busy) and forwards the request to it unchanged; the decode worker calls one of the prefill
 * workers it was started with. A streamed answer is relayed event by event as it arrives. {@code GET
 * /health} checks every worker (the prefill workers given here are only checked); {@code GET
 * /v1/models} asks a decode worker.
 */
public final class Router implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Router.class);

    private final HttpServer server;
    private final String url;
    private final List<String> prefill;
    private final List<String> decode;
    private final AtomicLongArray decodeLoad;
    private final HttpClient client;
    private final Duration timeout;
    private final AtomicInteger nextDecode = new AtomicInteger();
    private final AtomicLong requests = new AtomicLong();
    private final AtomicLong failures = new AtomicLong();
    private final AtomicBoolean closed = new AtomicBoolean();

    private Router(HttpServer server, String url, List<String> prefill, List<String> decode, Duration timeout) {
        this.server = server;
        this.url = url;
        this.prefill = List.copyOf(prefill);
        this.decode = List.copyOf(decode);
        this.decodeLoad = new AtomicLongArray(decode.size());
        this.timeout = timeout;
        this.client = Http.newClient(Duration.ofSeconds(10));
    }

    /**
     * Starts a router on {@code host:port} (0: a free port) in front of the decode workers; the
     * prefill workers (may be empty) are only checked by {@code /health}.
     */
    public static Router start(String host, int port, int threads, List<String> prefillUrls, List<String> decodeUrls,
            Duration timeout) throws IOException {
        if (decodeUrls.isEmpty()) {
            throw new IllegalArgumentException("the router needs at least one decode worker");
        }
        HttpServer server = Http.start(host, port, threads, "router");
        Router r = new Router(server, Workers.url(host, server), strip(prefillUrls), strip(decodeUrls), timeout);
        server.createContext("/v1/completions", Http.route("POST", r::completions));
        server.createContext("/v1/models", Http.route("GET", r::models));
        server.createContext("/health", Http.route("GET", r::health));
        server.createContext("/metrics", Http.route("GET", r::metrics));
        return r;
    }

    private static List<String> strip(List<String> urls) {
        return urls.stream().map(u -> u.endsWith("/") ? u.substring(0, u.length() - 1) : u).toList();
    }

    /** The base URL ({@code http://host:port}). */
    public String url() {
        return url;
    }

    private void completions(HttpExchange ex) throws IOException {
        requests.incrementAndGet();
        JsonObject body = Http.readJson(ex);
        boolean stream = body.has("stream") && body.get("stream").isJsonPrimitive()
                && body.get("stream").getAsJsonPrimitive().isBoolean() && body.get("stream").getAsBoolean();
        int d = pickDecode();
        decodeLoad.incrementAndGet(d);
        try {
            HttpRequest req = HttpRequest.newBuilder(URI.create(decode.get(d) + "/v1/completions"))
                    .timeout(timeout)
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body.toString(), StandardCharsets.UTF_8))
                    .build();
            HttpResponse<InputStream> resp;
            try {
                resp = client.send(req, HttpResponse.BodyHandlers.ofInputStream());
            } catch (IOException e) {
                failures.incrementAndGet();
                throw new HttpError(502, "server_error", "decode worker " + decode.get(d) + " unreachable: " + e, e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new HttpError(503, "server_error", "interrupted", e);
            }
            if (resp.statusCode() != 200) {
                failures.incrementAndGet();
            }
            relay(ex, resp, stream && resp.statusCode() == 200);
        } finally {
            decodeLoad.decrementAndGet(d);
        }
    }

    /** Copies the worker's answer; for a stream, each piece as soon as it arrives. */
    private static void relay(HttpExchange ex, HttpResponse<InputStream> resp, boolean stream) throws IOException {
        String type = resp.headers().firstValue("Content-Type").orElse("application/json");
        ex.getResponseHeaders().set("Content-Type", type);
        try (InputStream in = resp.body()) {
            if (!stream) {
                byte[] b = in.readAllBytes();
                ex.sendResponseHeaders(resp.statusCode(), b.length == 0 ? -1 : b.length);
                if (b.length > 0) {
                    try (OutputStream out = ex.getResponseBody()) {
                        out.write(b);
                    }
                }
                return;
            }
            ex.getResponseHeaders().set("Cache-Control", "no-cache");
            ex.sendResponseHeaders(200, 0);
            try (OutputStream out = ex.getResponseBody()) {
                byte[] buf = new byte[16384];
                int n;
                while ((n = in.read(buf)) >= 0) {
                    out.write(buf, 0, n);
                    out.flush();
                }
            }
        }
    }

    /** The decode worker with the fewest requests in flight, ties broken round robin. */
    private int pickDecode() {
        int start = Math.floorMod(nextDecode.getAndIncrement(), decode.size());
        int best = start;
        for (int i = 1; i < decode.size(); i++) {
            int k = (start + i) % decode.size();
            if (decodeLoad.get(k) < decodeLoad.get(best)) {
                best = k;
            }
        }
        return best;
    }

    private void models(HttpExchange ex) throws IOException {
        JsonObject o = get(decode.get(0) + "/v1/models");
        if (o == null) {
            throw new HttpError(502, "server_error", "decode worker " + decode.get(0) + " did not answer");
        }
        Http.sendJson(ex, 200, o);
    }

    private void health(HttpExchange ex) throws IOException {
        JsonObject o = new JsonObject();
        boolean ok = true;
        List<CompletableFuture<JsonObject>> checks = new java.util.ArrayList<>();
        for (String u : prefill) {
            checks.add(CompletableFuture.supplyAsync(() -> get(u + "/health")));
        }
        for (String u : decode) {
            checks.add(CompletableFuture.supplyAsync(() -> get(u + "/health")));
        }
        JsonArray pre = new JsonArray();
        JsonArray dec = new JsonArray();
        for (int i = 0; i < checks.size(); i++) {
            boolean isPrefill = i < prefill.size();
            String u = isPrefill ? prefill.get(i) : decode.get(i - prefill.size());
            JsonObject h = checks.get(i).join();
            JsonObject w = new JsonObject();
            w.addProperty("url", u);
            boolean up = h != null && "ok".equals(str(h.get("status")));
            ok &= up;
            w.addProperty("status", up ? "ok" : "unreachable");
            if (h != null) {
                w.add("model", h.get("model"));
                w.add("active", h.get("active"));
                if (h.has("kv")) {
                    w.add("segment", h.getAsJsonObject("kv").get("segment"));
                    w.add("protocol", h.getAsJsonObject("kv").get("protocol"));
                }
            }
            (isPrefill ? pre : dec).add(w);
        }
        o.addProperty("status", ok ? "ok" : "degraded");
        o.addProperty("role", "router");
        o.add("prefill", pre);
        o.add("decode", dec);
        Http.sendJson(ex, ok ? 200 : 503, o);
    }

    private void metrics(HttpExchange ex) throws IOException {
        JsonObject o = new JsonObject();
        o.addProperty("role", "router");
        o.addProperty("requests", requests.get());
        o.addProperty("failures", failures.get());
        Http.sendJson(ex, 200, o);
    }

    private JsonObject get(String u) {
        try {
            HttpRequest r = HttpRequest.newBuilder(URI.create(u)).timeout(Duration.ofSeconds(5)).GET().build();
            HttpResponse<String> resp = client.send(r, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            JsonElement e = JsonParser.parseString(resp.body());
            return resp.statusCode() == 200 && e.isJsonObject() ? e.getAsJsonObject() : null;
        } catch (IOException | RuntimeException e) {
            LOG.debug("GET {} failed: {}", u, e.toString());
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    private static String str(JsonElement e) {
        return e == null || e.isJsonNull() ? null : e.getAsString();
    }

    /** Stops the HTTP server. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            Http.stop(server);
        }
    }
}
