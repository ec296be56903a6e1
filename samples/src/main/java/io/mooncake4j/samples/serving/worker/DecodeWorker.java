package io.mooncake4j.samples.serving.worker;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.connector.DecodeRequest;
import io.mooncake4j.djl.connector.KvTransferStats;
import io.mooncake4j.djl.kv.PagedKvCache;
import io.mooncake4j.djl.llama.LlamaConfig;
import io.mooncake4j.djl.llama.Sampler;
import io.mooncake4j.djl.llama.Tokenizer;
import io.mooncake4j.djl.serving.KvRuntime;
import io.mooncake4j.samples.serving.http.CompletionRequest;
import io.mooncake4j.samples.serving.http.CompletionResult;
import io.mooncake4j.samples.serving.http.Http;
import io.mooncake4j.samples.serving.http.Http.HttpError;
import io.mooncake4j.samples.serving.http.SseWriter;
import io.mooncake4j.samples.serving.model.ServingModel;
import io.mooncake4j.samples.serving.model.TokenText;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The decode worker and the entry point of a request: {@code POST /v1/completions} (OpenAI
 * style) tokenizes the prompt, allocates KV blocks for the whole generation in the registered pool
 * (waiting up to {@link #BLOCK_WAIT}, first come first served, while it is full), asks a prefill
 * worker ({@code POST /v1/prefill}, carrying the blocks' {@code kv_transfer_params}) to compute the
 * prompt's KV cache and push it here, streams the first token prefill sampled, waits for the
 * connector to report the KV cache in place, then generates the rest one token per forward from
 * the paged cache, streaming each token.
 *
 * <p>The prefill workers are those the worker was started with ({@code --prefill}), round robin;
 * a request cannot name another one (a client-chosen URL would let anyone who reaches this port
 * make it POST anywhere). When a request fails before its destination reached a prefill worker
 * (the call could not connect, or the worker answered that it will not push), its blocks are freed
 * at once; otherwise they stay quarantined until no late push can land in them.
 *
 * <p>Generation follows llama2.c's run.c exactly (the sampler, and BOS ending a story), so a
 * greedy request gives the tokens of {@code mooncake4j generate}. Responses carry, besides OpenAI's
 * fields, a {@value CompletionResult#SERVER_FIELD} object with the request's timings and KV
 * transfer figures.
 */
public final class DecodeWorker implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeWorker.class);
    /** How long a request waits for free KV blocks before it is refused. */
    static final Duration BLOCK_WAIT = Duration.ofSeconds(60);

    private final ServingModel model;
    private final KvRuntime kv;
    final WorkerStats stats;
    private final HttpServer server;
    private final String url;
    private final List<String> prefillUrls;
    private final HttpClient client;
    private final Duration timeout;
    private final AtomicInteger nextPrefill = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();

    private DecodeWorker(ServingModel model, KvRuntime kv, HttpServer server, String url, List<String> prefillUrls,
            Duration timeout) {
        this.model = model;
        this.kv = kv;
        this.stats = new WorkerStats("decode", model, kv);
        this.server = server;
        this.url = url;
        this.prefillUrls = List.copyOf(prefillUrls);
        this.timeout = timeout;
        this.client = Http.newClient(Duration.ofSeconds(10));
    }

    /**
     * Starts serving on {@code host:port} (0: a free port).
     *
     * @param prefillUrls the prefill workers, used round robin (the only URLs this worker calls)
     * @param timeout the longest a call to a prefill worker may take
     */
    public static DecodeWorker start(ServingModel model, KvRuntime kv, String host, int port, int threads,
            List<String> prefillUrls, Duration timeout) throws IOException {
        HttpServer server = Http.start(host, port, threads, "decode");
        DecodeWorker w = new DecodeWorker(model, kv, server, Workers.url(host, server),
                prefillUrls.stream().map(u -> u.endsWith("/") ? u.substring(0, u.length() - 1) : u).toList(), timeout);
        server.createContext("/v1/completions", Http.route("POST", w::completions));
        server.createContext("/v1/models", Http.route("GET", w::models));
        server.createContext("/health", Http.route("GET", w.stats::health));
        server.createContext("/metrics", Http.route("GET", w.stats::metrics));
        return w;
    }

    /** The base URL ({@code http://host:port}). */
    public String url() {
        return url;
    }

    // ------------------------------------------------------------------ completions

    private void completions(HttpExchange ex) throws IOException {
        long arrival = System.nanoTime();
        CompletionRequest req = CompletionRequest.parse(Http.readJson(ex));
        if (req.model() != null && !req.model().isEmpty() && !req.model().equals(model.name())) {
            throw new HttpError(404, "invalid_request_error", "model '" + req.model() + "' does not exist: this"
                    + " worker serves '" + model.name() + "'");
        }
        LlamaConfig c = model.config();
        Tokenizer tokenizer = model.tokenizer();
        int[] prompt = req.promptTokens() != null ? req.promptTokens() : tokenizer.encode(req.prompt(), true, false);
        Workers.checkTokens(prompt, c);
        int p = prompt.length;
        int total = req.steps() > 0 ? model.generator().effectiveSteps(req.steps())
                : (int) Math.min(c.seqLen(), (long) p - 1 + req.maxTokens());
        int n = Math.min(p, total);
        long seed = req.seed() != null ? req.seed() : ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
        String requestId = "cmpl-" + UUID.randomUUID().toString().replace("-", "");
        String prefillUrl = pickPrefill();
        if (prefillUrl == null) {
            throw new HttpError(503, "server_error", "no prefill worker: start the decode worker with --prefill URL");
        }
        stats.active.incrementAndGet();
        try (DecodeRequest dr = expect(requestId, n, total)) {
            long allocated = System.nanoTime();
            Output output = req.stream() ? new StreamOutput(ex, requestId, model.name(), req.returnTokenIds())
                    : new WholeOutput(ex, requestId, model.name(), req.returnTokenIds());
            JsonObject figures;
            try {
                figures = generate(req, prompt, total, seed, dr, prefillUrl, output, arrival, allocated);
            } catch (RuntimeException e) {
                output.fail(e instanceof HttpError h ? h : new HttpError(500, "server_error", e.toString(), e));
                throw e;
            }
            stats.served.incrementAndGet();
            if (LOG.isDebugEnabled()) {
                LOG.debug("{} done: {}", requestId, figures);
            }
        } catch (RuntimeException | IOException e) {
            stats.failed.incrementAndGet();
            throw e;
        } finally {
            stats.active.decrementAndGet();
        }
    }

    private JsonObject generate(CompletionRequest req, int[] prompt, int total, long seed, DecodeRequest dr,
            String prefillUrl, Output out, long arrival, long allocated) throws IOException {
        LlamaConfig c = model.config();
        int p = prompt.length;
        // 1. prefill computes the prompt's KV cache, pushes it into our blocks, samples the first token
        JsonObject pre = callPrefill(prefillUrl, dr, prompt, total, req, seed);
        long prefilled = System.nanoTime();
        int[] state = Json.ints(pre, "tokens");
        int positions = pre.get("positions").getAsInt();
        boolean finished = pre.get("finished").getAsBoolean();
        int[] effectivePrompt = Arrays.copyOf(state, Math.min(p, state.length));
        out.begin(effectivePrompt);
        TokenText text = new TokenText(model.tokenizer());
        int[] seq = Arrays.copyOf(state, Math.max(state.length, total + 1));
        int len = state.length;
        long firstToken = 0;
        if (len > p) {
            out.token(seq[p], text.next(seq[p - 1], seq[p]));
            firstToken = System.nanoTime();
        }
        // 2. the KV cache arrives through the engine (the connector reports it)
        KvTransferStats stats;
        try {
            stats = dr.await();
        } catch (KvException e) {
            throw Workers.httpError(e);
        }
        long kvReady = System.nanoTime();
        // 3. decode the rest from the paged cache, as run.c does
        String finish = "length";
        int decodeSteps = 0;
        if (!finished) {
            // the sampler's random stream continues where prefill's left off: prefill drew once
            Sampler sampler = new Sampler(c.vocabSize(), req.temperature(), req.topP(), seed);
            if (req.temperature() > 0) {
                sampler.sample(new float[c.vocabSize()]);
            }
            PagedKvCache cache = dr.cache();
            int pos = positions;
            int token = seq[len - 1];
            while (pos < total) {
                float[] logits = model.model().step(token, pos, cache);
                pos++;
                decodeSteps++;
                int next = sampler.sample(logits);
                if (next == Tokenizer.BOS) {
                    finish = "stop";
                    break;
                }
                seq[len++] = next;
                out.token(next, text.next(token, next));
                if (firstToken == 0) {
                    firstToken = System.nanoTime();
                }
                token = next;
            }
        } else if (len == p && positions == p && total > p) {
            finish = "stop"; // prefill sampled BOS: the story ended at once
        }
        long end = System.nanoTime();
        int generated = len - Math.min(p, len);
        JsonObject figures = new JsonObject();
        figures.addProperty("request_id", dr.requestId());
        figures.addProperty("prefill_url", prefillUrl);
        figures.addProperty("prompt_tokens", p);
        figures.addProperty("queue_ms", Json.millis(allocated - arrival));
        figures.addProperty("prefill_ms", pre.get("prefill_ms").getAsDouble());
        figures.addProperty("prefill_call_ms", Json.millis(prefilled - allocated));
        figures.addProperty("ttft_ms", Json.millis((firstToken == 0 ? end : firstToken) - arrival));
        figures.addProperty("kv_wait_ms", Json.millis(kvReady - prefilled));
        figures.addProperty("kv_bytes", stats.bytes());
        figures.addProperty("kv_transfer_ms", Json.millis(stats.transferNanos()));
        figures.addProperty("kv_requests", stats.requests());
        figures.addProperty("kv_blocks", stats.blocks());
        figures.addProperty("kv_gb_per_s", Math.round(stats.gigabytesPerSecond() * 1000) / 1000.0);
        figures.addProperty("kv_protocol", kv.engine().protocol());
        figures.addProperty("decode_steps", decodeSteps);
        figures.addProperty("decode_ms", Json.millis(end - kvReady));
        figures.addProperty("tpot_ms", decodeSteps == 0 ? 0 : Json.millis((end - kvReady) / decodeSteps));
        figures.addProperty("e2e_ms", Json.millis(end - arrival));
        JsonObject usage = new JsonObject();
        usage.addProperty("prompt_tokens", p);
        usage.addProperty("completion_tokens", generated);
        usage.addProperty("total_tokens", p + generated);
        out.finish(finish, text.flush(), usage, figures);
        return figures;
    }

    private DecodeRequest expect(String requestId, int n, int total) {
        int blocks = kv.pool().layout().blocksFor(total);
        if (blocks > kv.pool().layout().numBlocks()) {
            throw new HttpError(400, "invalid_request_error", "the request needs " + blocks + " KV blocks but the"
                    + " decode pool has " + kv.pool().layout().numBlocks() + ": raise --kv_pool_mb");
        }
        try {
            // waits (first come, first served) while the pool is full
            return kv.connector().expect(requestId, n, total, new int[0], BLOCK_WAIT);
        } catch (KvException e) {
            throw Workers.httpError(e);
        }
    }

    /**
     * Asks a prefill worker to compute the prompt and push its KV cache into {@code dr}'s blocks.
     * When the call fails in a way that shows the destination never reached the worker (no
     * connection, or the worker answered that it will not push), cancels {@code dr} as undelivered
     * so its blocks are freed at once.
     */
    private JsonObject callPrefill(String prefillUrl, DecodeRequest dr, int[] prompt, int total, CompletionRequest req,
            long seed) {
        JsonObject body = new JsonObject();
        body.addProperty("request_id", dr.requestId());
        body.add("prompt_token_ids", Json.array(prompt));
        body.addProperty("steps", total);
        body.addProperty("temperature", req.temperature());
        body.addProperty("top_p", req.topP());
        body.addProperty("seed", seed);
        body.add("kv_transfer_params", dr.params().toJson());
        HttpRequest r = HttpRequest.newBuilder(URI.create(prefillUrl + "/v1/prefill"))
                .timeout(timeout)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body.toString(), StandardCharsets.UTF_8))
                .build();
        HttpResponse<String> resp;
        try {
            resp = client.send(r, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        } catch (ConnectException | HttpConnectTimeoutException e) {
            dr.cancel(false); // nothing was sent
            throw new HttpError(502, "server_error", "prefill worker " + prefillUrl + " unreachable: " + e, e);
        } catch (IOException e) {
            // the request may have reached the worker: dr stays quarantined when closed
            throw new HttpError(502, "server_error", "prefill worker " + prefillUrl + " unreachable: " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HttpError(503, "server_error", "interrupted while calling the prefill worker", e);
        }
        if (resp.statusCode() != 200) {
            if ("none".equals(resp.headers().firstValue(PrefillWorker.KV_PUSH_HEADER).orElse(null))) {
                dr.cancel(false); // the worker refused or failed before it could push
            }
            int status = resp.statusCode() == 400 ? 400 : resp.statusCode() == 503 ? 503 : 502;
            throw new HttpError(status, status == 400 ? "invalid_request_error" : "server_error",
                    "prefill worker " + prefillUrl + ": HTTP " + resp.statusCode() + ": "
                            + Http.errorMessage(resp.body()));
        }
        return JsonParser.parseString(resp.body()).getAsJsonObject();
    }

    private String pickPrefill() {
        if (prefillUrls.isEmpty()) {
            return null;
        }
        return prefillUrls.get(Math.floorMod(nextPrefill.getAndIncrement(), prefillUrls.size()));
    }

    // ------------------------------------------------------------------ output

    /** Where the tokens of one completion go: a stream of events, or one JSON answer. */
    private abstract static class Output {
        final HttpExchange ex;
        final String id;
        final String model;
        final boolean ids;
        final long created = System.currentTimeMillis() / 1000;
        int[] prompt;

        Output(HttpExchange ex, String id, String model, boolean ids) {
            this.ex = ex;
            this.id = id;
            this.model = model;
            this.ids = ids;
        }

        abstract void begin(int[] promptTokens) throws IOException;

        abstract void token(int id, String text) throws IOException;

        abstract void finish(String reason, String tail, JsonObject usage, JsonObject figures) throws IOException;

        /** Reports a failure after the answer began (a stream); before, the caller answers an error. */
        void fail(HttpError e) {}

        JsonObject envelope(String object) {
            JsonObject o = new JsonObject();
            o.addProperty("id", id);
            o.addProperty("object", object);
            o.addProperty("created", created);
            o.addProperty("model", model);
            return o;
        }

        static JsonObject choice(String text, String finish) {
            JsonObject ch = new JsonObject();
            ch.addProperty("index", 0);
            ch.addProperty("text", text);
            ch.add("logprobs", com.google.gson.JsonNull.INSTANCE);
            if (finish == null) {
                ch.add("finish_reason", com.google.gson.JsonNull.INSTANCE);
            } else {
                ch.addProperty("finish_reason", finish);
            }
            return ch;
        }
    }

    /** Server-Sent Events: one chunk per token, then a chunk with the finish reason and usage, then [DONE]. */
    private static final class StreamOutput extends Output {
        SseWriter sse;
        boolean promptSent;

        StreamOutput(HttpExchange ex, String id, String model, boolean ids) {
            super(ex, id, model, ids);
        }

        @Override
        void begin(int[] promptTokens) throws IOException {
            prompt = promptTokens;
            sse = SseWriter.begin(ex);
        }

        private JsonObject chunk(JsonObject choice) {
            if (ids && !promptSent) {
                choice.add("prompt_token_ids", Json.array(prompt));
                promptSent = true;
            }
            JsonObject o = envelope("text_completion");
            JsonArray a = new JsonArray(1);
            a.add(choice);
            o.add("choices", a);
            return o;
        }

        @Override
        void token(int tokenId, String text) throws IOException {
            JsonObject ch = choice(text, null);
            if (ids) {
                ch.add("token_ids", Json.array(new int[] {tokenId}));
            }
            sse.event(chunk(ch));
        }

        @Override
        void finish(String reason, String tail, JsonObject usage, JsonObject figures) throws IOException {
            JsonObject o = chunk(choice(tail, reason));
            o.add("usage", usage);
            o.add(CompletionResult.SERVER_FIELD, figures);
            sse.event(o);
            sse.done();
        }

        @Override
        void fail(HttpError e) {
            if (sse != null) {
                try {
                    sse.event(Http.errorBody(e.status(), e.type(), e.getMessage()));
                    sse.done();
                } catch (IOException ignored) {
                    // the client went away
                }
            }
        }
    }

    /** One JSON answer at the end. */
    private static final class WholeOutput extends Output {
        final StringBuilder text = new StringBuilder();
        int[] tokens = new int[16];
        int count;

        WholeOutput(HttpExchange ex, String id, String model, boolean ids) {
            super(ex, id, model, ids);
        }

        @Override
        void begin(int[] promptTokens) {
            prompt = promptTokens;
        }

        @Override
        void token(int tokenId, String piece) {
            text.append(piece);
            if (count == tokens.length) {
                tokens = Arrays.copyOf(tokens, count * 2);
            }
            tokens[count++] = tokenId;
        }

        @Override
        void finish(String reason, String tail, JsonObject usage, JsonObject figures) throws IOException {
            text.append(tail);
            JsonObject ch = choice(text.toString(), reason);
            if (ids) {
                ch.add("prompt_token_ids", Json.array(prompt));
                ch.add("token_ids", Json.array(Arrays.copyOf(tokens, count)));
            }
            JsonObject o = envelope("text_completion");
            JsonArray a = new JsonArray(1);
            a.add(ch);
            o.add("choices", a);
            o.add("usage", usage);
            o.add(CompletionResult.SERVER_FIELD, figures);
            Http.sendJson(ex, 200, o);
        }
    }

    // ------------------------------------------------------------------ other endpoints

    private void models(HttpExchange ex) throws IOException {
        JsonObject m = new JsonObject();
        m.addProperty("id", model.name());
        m.addProperty("object", "model");
        m.addProperty("owned_by", "mooncake4j");
        m.addProperty("max_model_len", model.config().seqLen());
        JsonArray data = new JsonArray();
        data.add(m);
        JsonObject o = new JsonObject();
        o.addProperty("object", "list");
        o.add("data", data);
        Http.sendJson(ex, 200, o);
    }

    /** Stops the HTTP server. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            Http.stop(server);
        }
    }
}
