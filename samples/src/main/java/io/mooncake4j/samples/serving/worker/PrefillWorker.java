package io.mooncake4j.samples.serving.worker;

import com.google.gson.JsonObject;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.connector.KvTransferParams;
import io.mooncake4j.djl.connector.PrefillRequest;
import io.mooncake4j.djl.llama.Generation;
import io.mooncake4j.djl.llama.LlamaConfig;
import io.mooncake4j.djl.llama.Sampler;
import io.mooncake4j.djl.serving.KvRuntime;
import io.mooncake4j.samples.serving.http.Http;
import io.mooncake4j.samples.serving.http.Http.HttpError;
import io.mooncake4j.samples.serving.model.ServingModel;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The prefill worker: {@code POST /v1/prefill} runs a prompt through the model in one batched
 * forward, writing its keys and values straight into blocks of the registered KV pool, hands them
 * to the connector, which WRITEs them into the decode worker's blocks named in the request's {@code
 * kv_transfer_params} (push, coalesced into one request per layer, K/V and run of blocks) and then
 * notifies it, and answers the first sampled token.
 *
 * <p>Request: {@code {"request_id", "prompt_token_ids": [...], "steps", "temperature", "top_p",
 * "seed", "kv_transfer_params": {...}}}. Answer: {@code {"request_id", "tokens": [...],
 * "prompt_length", "positions", "finished", "prefill_ms"}}, the {@link Generation} to continue from.
 * The answer does not wait for the transfer: the decode worker waits for the connector's
 * notification. An error answered before the KV cache was handed to the connector for pushing
 * carries the header {@value #KV_PUSH_HEADER}{@code : none}: this worker will never write into the
 * request's destination, so the decode worker may reuse those blocks at once.
 *
 * <p>A request waits up to {@link #BLOCK_WAIT} for free KV blocks when the pool is full (the
 * connector queues it, first come first served), then fails with 503.
 */
public final class PrefillWorker implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillWorker.class);
    /** How long a request waits for free KV blocks before it is refused. */
    static final Duration BLOCK_WAIT = Duration.ofSeconds(60);
    /** The response header of an error after which this worker will not push: value {@code none}. */
    public static final String KV_PUSH_HEADER = "Mooncake4j-Kv-Push";

    private final ServingModel model;
    private final KvRuntime kv;
    final WorkerStats stats;
    private final HttpServer server;
    private final String url;
    private final AtomicBoolean closed = new AtomicBoolean();

    private PrefillWorker(ServingModel model, KvRuntime kv, HttpServer server, String url) {
        this.model = model;
        this.kv = kv;
        this.stats = new WorkerStats("prefill", model, kv);
        this.server = server;
        this.url = url;
    }

    /** Starts serving on {@code host:port} (0: a free port). The worker closes neither model nor kv. */
    public static PrefillWorker start(ServingModel model, KvRuntime kv, String host, int port, int threads)
            throws IOException {
        HttpServer server = Http.start(host, port, threads, "prefill");
        PrefillWorker w = new PrefillWorker(model, kv, server, Workers.url(host, server));
        server.createContext("/v1/prefill", Http.route("POST", w::prefill));
        server.createContext("/health", Http.route("GET", w.stats::health));
        server.createContext("/metrics", Http.route("GET", w.stats::metrics));
        return w;
    }

    /** The base URL ({@code http://host:port}). */
    public String url() {
        return url;
    }

    private void prefill(HttpExchange ex) throws IOException {
        // until finish() hands the cache to the connector, any error answer means: no push will come
        ex.getResponseHeaders().set(KV_PUSH_HEADER, "none");
        JsonObject req = Http.readJson(ex);
        String requestId = Json.string(req, "request_id");
        int[] tokens = Json.ints(req, "prompt_token_ids");
        LlamaConfig c = model.config();
        Workers.checkTokens(tokens, c);
        int total = model.generator().effectiveSteps(req.has("steps") ? req.get("steps").getAsInt() : 0);
        int n = Math.min(tokens.length, total);
        float temperature = req.has("temperature") ? req.get("temperature").getAsFloat() : 0f;
        float topP = req.has("top_p") ? req.get("top_p").getAsFloat() : 1f;
        long seed = req.has("seed") ? req.get("seed").getAsLong() : 1;
        KvTransferParams dest;
        try {
            dest = req.has("kv_transfer_params") ? KvTransferParams.fromJson(req.getAsJsonObject("kv_transfer_params"))
                    : null;
        } catch (KvException e) {
            throw HttpError.badRequest(e.getMessage());
        }
        if (dest == null) {
            throw HttpError.badRequest("kv_transfer_params (the decode worker's destination) is missing");
        }
        int blocks = kv.pool().layout().blocksFor(n);
        if (blocks > kv.pool().layout().numBlocks()) {
            throw new HttpError(400, "invalid_request_error", "request " + requestId + " needs " + blocks
                    + " KV blocks but the prefill pool has " + kv.pool().layout().numBlocks() + ": raise --kv_pool_mb");
        }
        stats.active.incrementAndGet();
        try {
            long t0 = System.nanoTime();
            PrefillRequest pr;
            try {
                // waits (first come, first served) while the pool is full; tells decode if it gives up
                pr = kv.connector().startPrefill(requestId, n, dest, BLOCK_WAIT);
            } catch (KvException e) {
                throw Workers.httpError(e);
            }
            long queued = System.nanoTime() - t0;
            Generation state;
            try {
                Sampler sampler = new Sampler(c.vocabSize(), temperature, topP, seed);
                state = model.generator().prefill(tokens, total, sampler, pr.cache(), null);
            } catch (RuntimeException e) {
                pr.abort("the model failed: " + e);
                throw e;
            }
            ex.getResponseHeaders().remove(KV_PUSH_HEADER);
            pr.finish();
            stats.served.incrementAndGet();
            JsonObject out = new JsonObject();
            out.addProperty("request_id", requestId);
            out.add("tokens", Json.array(state.tokens()));
            out.addProperty("prompt_length", state.promptLength());
            out.addProperty("positions", state.positions());
            out.addProperty("finished", state.finished());
            out.addProperty("prefill_ms", Json.millis(state.prefillNanos()));
            out.addProperty("queue_ms", Json.millis(queued));
            out.addProperty("segment", kv.engine().localSegmentName());
            Http.sendJson(ex, 200, out);
        } catch (RuntimeException e) {
            stats.failed.incrementAndGet();
            throw e;
        } finally {
            stats.active.decrementAndGet();
        }
    }

    /** Stops the HTTP server. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            Http.stop(server);
            LOG.debug("prefill worker {} stopped", url);
        }
    }
}
