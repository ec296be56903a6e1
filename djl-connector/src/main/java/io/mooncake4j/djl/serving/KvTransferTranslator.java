package io.mooncake4j.djl.serving;

import ai.djl.Model;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.ndarray.BytesSupplier;
import ai.djl.ndarray.NDList;
import ai.djl.translate.NoBatchifyTranslator;
import ai.djl.translate.ServingTranslator;
import ai.djl.translate.TranslatorContext;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.connector.DecodeRequest;
import io.mooncake4j.djl.connector.KvConnector;
import io.mooncake4j.djl.connector.KvConnectorConfig;
import io.mooncake4j.djl.connector.KvTransferParams;
import io.mooncake4j.djl.connector.KvTransferStats;
import io.mooncake4j.djl.connector.PrefillRequest;
import io.mooncake4j.djl.connector.TransferMode;
import io.mooncake4j.djl.kv.KvPrefixCache;
import io.mooncake4j.djl.kv.PagedKvPool;
import io.mooncake4j.djl.llama.Generation;
import java.net.URI;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.UUID;
import java.util.function.BiFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Makes a DJL model a prefill or decode worker: runs a llama2.c checkpoint over a paged KV cache in
 * registered memory and moves the prompt's KV cache from the prefill worker to the decode worker
 * with a {@link KvConnector}. All work happens in {@link #processInput}; the model's block is an
 * identity ({@code blockFactory=ai.djl.nn.IdentityBlockFactory}, {@code option.hasParameter=false}).
 * DJL Serving creates it from {@code translator=io.mooncake4j.djl.serving.KvTransferTranslator}
 * (the serving jar in the model's {@code libs/} or in {@code deps/}; see docs/djl-serving.md); DJL
 * Java code from {@link KvTransferTranslatorFactory}. Settings come from the model's arguments and
 * {@code serving.properties}: {@code role} ({@code prefill} or {@code decode}), {@code checkpoint},
 * {@code tokenizer}, {@code prefill_url} and the connector's {@code MC_KV_*}.
 *
 * <p><b>Prefill request</b> (role {@code prefill}): {@code {"request_id", "prompt" | "prompt_tokens",
 * "max_new_tokens" (32) | "steps", "temperature" (0), "top_p", "seed", "kv_transfer_params"
 * (decode's destination, or absent / {"do_remote_decode": true}), "kv_mode" ("push" | "pull")}}.
 * Response: {@code {"request_id", "role": "prefill", "first_token", "tokens", "generation",
 * "kv_transfer_params" (the source for decode, absent when generation already finished),
 * "transfer" (stats when it pushed), "prefill_ms"}}.
 *
 * <p><b>Decode request</b> (role {@code decode}): {@code {"request_id", "max_new_tokens" | "steps",
 * "temperature", ..., "kv_transfer_params" (from the prefill response)}} (prefill first), or
 * {@code {"request_id", "prompt" | "prompt_tokens", ...}} with a {@code prefill_url} (model
 * argument only) or {@code prefill_client} argument (decode first: decode allocates blocks and
 * asks prefill to push). Response: {@code {"request_id", "role": "decode", "tokens", "generated",
 * "text", "transfer", "decode_ms", "tokens_per_s", "wait_ms"}}. Errors answer a JSON {@code
 * {"error", "code"}} with HTTP status 4xx/5xx.
 */
public final class KvTransferTranslator implements ServingTranslator, NoBatchifyTranslator<Input, Output> {
    private static final Logger LOG = LoggerFactory.getLogger(KvTransferTranslator.class);
    private static final String RESULT = "mooncake4j.kv.result";

    private final ClassLoader contextLoader;
    private volatile Model model;
    private Map<String, Object> arguments = new HashMap<>();
    private volatile Runtime runtime;

    /** The per-model state built on first use. */
    private static final class Runtime implements AutoCloseable {
        final KvRole role;
        final KvConnectorConfig config;
        final LlamaRunner runner;
        final KvRuntime kv;
        final PrefillClient prefillClient;
        final KvPrefixCache prefixCache;

        Runtime(KvRole role, KvConnectorConfig config, LlamaRunner runner, KvRuntime kv, PrefillClient prefillClient) {
            this.role = role;
            this.config = config;
            this.runner = runner;
            this.kv = kv;
            this.prefillClient = prefillClient;
            this.prefixCache = role == KvRole.DECODE && config.prefixCacheBlocks() > 0
                    ? new KvPrefixCache(kv.pool().allocator(), kv.pool().layout().blockTokens(), config.prefixCacheBlocks())
                    : null;
        }

        KvConnector connector() {
            return kv.connector();
        }

        PagedKvPool pool() {
            return kv.pool();
        }

        @Override
        public void close() {
            if (prefixCache != null) {
                prefixCache.clear();
            }
            kv.close();
            runner.close();
        }
    }

    /**
     * For DJL Serving's {@code translator=io.mooncake4j.djl.serving.KvTransferTranslator}: DJL
     * Serving finds the class in the model's {@code libs/} (or on its classpath and {@code deps/}),
     * hands over the model's settings with {@link #setArguments} and the model with {@link
     * #prepare}. The transport plugins are looked up with this translator's own classloader and the
     * thread context classloader of the thread that constructs it.
     */
    public KvTransferTranslator() {
        this(null, null, Thread.currentThread().getContextClassLoader());
    }

    KvTransferTranslator(Model model, Map<String, ?> arguments, ClassLoader contextLoader) {
        this.model = model;
        this.contextLoader = contextLoader;
        setArguments(arguments);
    }

    @Override
    public void setArguments(Map<String, ?> arguments) {
        this.arguments = arguments == null ? new HashMap<>() : new HashMap<>(arguments);
    }

    /** The role, connector, pool and engine (built on first use). */
    public KvConnector connector() {
        return runtime().connector();
    }

    /** The role this model serves. */
    public KvRole role() {
        return runtime().role;
    }

    @Override
    public void prepare(TranslatorContext ctx) {
        if (model == null) {
            model = ctx.getModel();
        }
        runtime();
    }

    private Runtime runtime() {
        Runtime r = runtime;
        if (r == null) {
            synchronized (this) {
                r = runtime;
                if (r == null) {
                    if (model == null) {
                        throw new IllegalStateException("KvTransferTranslator has no model yet: DJL calls prepare"
                                + " before the first request; outside a Predictor, build it with"
                                + " KvTransferTranslatorFactory");
                    }
                    r = start(model);
                    runtime = r;
                }
            }
        }
        return r;
    }

    /** Looks a setting up in the arguments, then the model's properties, as {@code key} or {@code option.key}. */
    String setting(String key) {
        for (String k : new String[] {key, "option." + key}) {
            Object v = arguments.get(k);
            if (v != null) {
                return v.toString();
            }
            String p = model.getProperty(k);
            if (p != null) {
                return p;
            }
        }
        return null;
    }

    private Runtime start(Model model) {
        KvRole role = KvRole.parse(setting("role"));
        Map<String, Object> settings = new HashMap<>(model.getProperties());
        settings.putAll(arguments);
        KvConnectorConfig config = KvConnectorConfig.fromMap(settings);
        TransferEngine engine = SharedTransferEngine.get(contextLoader);
        String checkpoint = setting("checkpoint") != null ? setting("checkpoint") : "model.bin";
        String tokenizer = setting("tokenizer") != null ? setting("tokenizer") : "tokenizer.bin";
        LlamaRunner runner = LlamaRunner.load(model.getModelPath(), checkpoint, tokenizer, model.getNDManager());
        try {
            KvRuntime kv = KvRuntime.on(engine, config, runner.config(), model.getNDManager());
            Runtime r = new Runtime(role, config, runner, kv, prefillClient());
            model.getNDManager().attachInternal("mooncake4j-kv-" + UUID.randomUUID(), r);
            LOG.info("model {}: role {}, {} on {}, {}", model.getName(), role.jsonName(), kv.pool().layout(),
                    engine.localSegmentName(), config);
            return r;
        } catch (RuntimeException e) {
            runner.close();
            throw e;
        }
    }

    private PrefillClient prefillClient() {
        Object c = arguments.get("prefill_client");
        if (c instanceof PrefillClient) {
            return (PrefillClient) c;
        }
        String url = setting("prefill_url");
        return url == null ? null : PrefillClient.http(URI.create(url), Duration.ofMinutes(5));
    }

    @Override
    public NDList processInput(TranslatorContext ctx, Input input) {
        Output out;
        try {
            JsonObject req = parse(input);
            Runtime r = runtime();
            JsonObject result = r.role == KvRole.PREFILL ? prefill(r, req) : decode(r, req);
            out = json(200, "OK", result);
        } catch (KvException e) {
            out = error(statusOf(e.error()), e.error().name(), e);
        } catch (MooncakeException e) {
            out = error(503, e.code().name(), e);
        } catch (RuntimeException e) {
            out = error(500, "INTERNAL", e);
        }
        ctx.setAttachment(RESULT, out);
        return new NDList();
    }

    @Override
    public Output processOutput(TranslatorContext ctx, NDList list) {
        return (Output) ctx.getAttachment(RESULT);
    }

    // ------------------------------------------------------------------ prefill

    private JsonObject prefill(Runtime r, JsonObject req) {
        String rid = string(req, "request_id", null);
        JsonObject kvp = req.has("kv_transfer_params") && req.get("kv_transfer_params").isJsonObject()
                ? req.getAsJsonObject("kv_transfer_params") : null;
        KvTransferParams destination = kvp != null && kvp.has("block_ids") ? KvTransferParams.fromJson(kvp) : null;
        if (rid == null) {
            rid = destination != null ? destination.requestId() : UUID.randomUUID().toString();
        }
        int[] tokens = promptTokens(r, req);
        int total = steps(r, req, tokens.length);
        int n = Math.min(tokens.length, total);
        TransferMode mode = req.has("kv_mode") ? TransferMode.parse(req.get("kv_mode").getAsString()) : null;
        PrefillRequest p = r.connector().startPrefill(rid, n, destination);
        Generation g;
        try {
            g = r.runner.generator.prefill(tokens, total, sampler(r, req), p.cache(), null);
        } catch (RuntimeException e) {
            p.abort("prefill failed: " + e);
            throw e;
        }
        JsonObject out = new JsonObject();
        out.addProperty("request_id", rid);
        out.addProperty("role", "prefill");
        JsonObject gen = generation(g, total);
        out.add("generation", gen);
        out.add("tokens", ints(g.tokens()));
        if (g.tokens().length > tokens.length) {
            out.addProperty("first_token", g.tokens()[tokens.length]);
        }
        out.addProperty("prefill_ms", g.prefillNanos() / 1e6);
        if (destination == null && g.finished()) {
            // nothing left to decode: do not hold blocks for a decode that will not come
            p.abort("generation finished in prefill");
            return out;
        }
        KvTransferParams source = p.finish(mode).withExtra("generation", gen);
        if (destination == null) {
            out.add("kv_transfer_params", source.toJson());
        } else if (!"false".equals(string(req, "wait_transfer", "true"))) {
            KvTransferStats s = p.await(r.config.waitTimeout());
            out.add("transfer", s.toJson());
        }
        return out;
    }

    // ------------------------------------------------------------------ decode

    private JsonObject decode(Runtime r, JsonObject req) {
        long t0 = System.nanoTime();
        JsonObject kvp = req.has("kv_transfer_params") && req.get("kv_transfer_params").isJsonObject()
                ? req.getAsJsonObject("kv_transfer_params") : null;
        DecodeRequest d;
        Generation state;
        int total;
        int[] prompt;
        if (kvp != null && kvp.has("block_ids")) {
            KvTransferParams source = KvTransferParams.fromJson(kvp);
            JsonObject gen = source.extra().has("generation") ? source.extra().getAsJsonObject("generation")
                    : req.getAsJsonObject("generation");
            if (gen == null) {
                throw new KvException(KvError.INVALID_PARAMS, "decode needs the prefill response's generation state"
                        + " (kv_transfer_params.generation or generation)");
            }
            state = generation(gen);
            total = gen.get("steps").getAsInt();
            int steps = total;
            prompt = Arrays.copyOf(state.tokens(), state.promptLength());
            d = withPrefix(r, prompt, source.numTokens(), steps,
                    (prefix, wait) -> r.connector().fetch(source, steps, prefix, wait));
        } else {
            // Only the model's own setting names the prefill worker: a URL from the request body would
            // let any client make this worker POST anywhere.
            PrefillClient client = r.prefillClient;
            if (req.has("prefill_url")) {
                throw new KvException(KvError.INVALID_PARAMS, "prefill_url is a model setting"
                        + " (serving.properties), not a request field");
            }
            if (client == null) {
                throw new KvException(KvError.INVALID_PARAMS, "a decode request needs kv_transfer_params from a prefill"
                        + " response, or the model setting prefill_url so decode can ask prefill itself");
            }
            String rid = string(req, "request_id", UUID.randomUUID().toString());
            int[] tokens = promptTokens(r, req);
            total = steps(r, req, tokens.length);
            int n = Math.min(tokens.length, total);
            int steps = total;
            prompt = tokens;
            d = withPrefix(r, tokens, n, steps, (prefix, wait) -> r.connector().expect(rid, n, steps, prefix, wait));
            JsonObject preq = new JsonObject();
            preq.addProperty("request_id", rid);
            preq.add("prompt_tokens", ints(tokens));
            preq.addProperty("steps", total);
            for (String k : new String[] {"temperature", "top_p", "seed"}) {
                if (req.has(k)) {
                    preq.add(k, req.get(k));
                }
            }
            preq.add("kv_transfer_params", d.params().toJson());
            JsonObject presp;
            try {
                presp = client.prefill(preq);
            } catch (Exception e) {
                d.close();
                throw new KvException(KvError.PEER_ERROR, "prefill worker failed for request " + rid + ": " + e, e);
            }
            if (presp.has("error") || !presp.has("generation")) {
                d.close();
                throw new KvException(KvError.PEER_ERROR, "prefill worker answered " + presp);
            }
            state = generation(presp.getAsJsonObject("generation"));
        }
        try {
            KvTransferStats stats = d.await();
            long waited = System.nanoTime() - t0;
            Generation done = r.runner.generator.decode(state, total, sampler(r, req), d.cache(), null);
            if (r.prefixCache != null) {
                r.prefixCache.insert(prompt, d.numTokens(), d.blocks());
            }
            JsonObject out = new JsonObject();
            out.addProperty("request_id", d.requestId());
            out.addProperty("role", "decode");
            out.add("tokens", ints(done.tokens()));
            out.add("generated", ints(done.generated()));
            out.addProperty("text", r.runner.text(done.tokens(), done.promptLength()));
            out.add("transfer", stats.toJson());
            out.addProperty("prefix_hit_tokens", d.startToken());
            out.addProperty("wait_ms", waited / 1e6);
            out.addProperty("decode_ms", (done.decodeNanos() - state.decodeNanos()) / 1e6);
            out.addProperty("tokens_per_s", done.decodeTokensPerSecond());
            return out;
        } finally {
            d.close();
        }
    }

    // ------------------------------------------------------------------ helpers

    /**
     * Starts a decode request with the longest cached prefix of the prompt (when the prefix cache
     * is on), evicting cached prefixes once if the pool is out of blocks, then waiting for blocks
     * up to {@code MC_KV_ALLOC_WAIT}.
     */
    private static DecodeRequest withPrefix(Runtime r, int[] prompt, int numTokens, int capacityTokens,
            BiFunction<int[], Duration, DecodeRequest> start) {
        KvPrefixCache cache = r.prefixCache;
        Duration wait = r.config.allocWait();
        int[] prefix = cache == null ? new int[0] : cache.match(prompt, numTokens);
        try {
            if (cache == null) {
                return start.apply(prefix, wait);
            }
            try {
                return start.apply(prefix, Duration.ZERO);
            } catch (KvException e) {
                if (e.error() != KvError.POOL_EXHAUSTED) {
                    throw e;
                }
                int need = r.pool().layout().blocksFor(capacityTokens) - prefix.length - r.pool().allocator().freeBlocks();
                cache.evict(Math.max(1, need));
                return start.apply(prefix, wait);
            }
        } finally {
            r.pool().allocator().release(prefix);
        }
    }

    private static JsonObject generation(Generation g, int steps) {
        JsonObject o = new JsonObject();
        o.add("tokens", ints(g.tokens()));
        o.addProperty("prompt_length", g.promptLength());
        o.addProperty("positions", g.positions());
        o.addProperty("finished", g.finished());
        o.addProperty("steps", steps);
        o.addProperty("prefill_ns", g.prefillNanos());
        return o;
    }

    private static Generation generation(JsonObject o) {
        return new Generation(toInts(o.getAsJsonArray("tokens")), o.get("prompt_length").getAsInt(),
                o.get("positions").getAsInt(), o.get("finished").getAsBoolean(),
                o.has("prefill_ns") ? o.get("prefill_ns").getAsLong() : 0, 0, 0);
    }

    private static int[] promptTokens(Runtime r, JsonObject req) {
        if (req.has("prompt_tokens")) {
            int[] t = toInts(req.getAsJsonArray("prompt_tokens"));
            if (t.length == 0) {
                throw new KvException(KvError.INVALID_PARAMS, "prompt_tokens is empty");
            }
            return t;
        }
        return r.runner.tokenizer.encode(string(req, "prompt", ""), true, false);
    }

    private static int steps(Runtime r, JsonObject req, int promptLength) {
        int steps = req.has("steps") ? req.get("steps").getAsInt()
                : promptLength + (req.has("max_new_tokens") ? req.get("max_new_tokens").getAsInt() : 32);
        return r.runner.generator.effectiveSteps(steps);
    }

    private static io.mooncake4j.djl.llama.Sampler sampler(Runtime r, JsonObject req) {
        float temperature = req.has("temperature") ? req.get("temperature").getAsFloat() : 0f;
        float topP = req.has("top_p") ? req.get("top_p").getAsFloat() : 0.9f;
        long seed = req.has("seed") ? req.get("seed").getAsLong() : 42;
        return r.runner.sampler(temperature, topP, seed);
    }

    private static JsonObject parse(Input input) {
        BytesSupplier data = input.getData();
        String text = data == null ? null : data.getAsString();
        if (text == null || text.isBlank()) {
            throw new KvException(KvError.INVALID_PARAMS, "the request body is empty: send a JSON object with"
                    + " Content-Type: application/json (DJL Serving reads a form-encoded body as parameters)");
        }
        JsonElement e;
        try {
            e = JsonParser.parseString(text);
        } catch (RuntimeException ex) {
            throw new KvException(KvError.INVALID_PARAMS, "the request body is not JSON: " + ex.getMessage(), ex);
        }
        if (!e.isJsonObject()) {
            throw new KvException(KvError.INVALID_PARAMS, "the request body must be a JSON object");
        }
        return e.getAsJsonObject();
    }

    private static String string(JsonObject o, String key, String fallback) {
        JsonElement e = o.get(key);
        return e == null || e.isJsonNull() ? fallback : e.getAsString();
    }

    private static JsonArray ints(int[] v) {
        JsonArray a = new JsonArray(v.length);
        for (int x : v) {
            a.add(x);
        }
        return a;
    }

    private static int[] toInts(JsonArray a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = a.get(i).getAsInt();
        }
        return r;
    }

    private static int statusOf(KvError e) {
        switch (e) {
            case INVALID_PARAMS:
            case LAYOUT_MISMATCH:
            case UNSUPPORTED_DTYPE:
                return 400;
            case POOL_EXHAUSTED:
                return 503;
            case TIMEOUT:
                return 504;
            case PEER_ERROR:
            case TRANSFER_FAILED:
                return 502;
            default:
                return 500;
        }
    }

    private static Output json(int code, String message, JsonObject body) {
        Output out = new Output(code, message);
        out.addProperty("Content-Type", "application/json");
        out.add(body.toString());
        return out;
    }

    private static Output error(int code, String kind, Exception e) {
        if (code >= 500) {
            LOG.warn("KV request failed: {}", e.toString());
        }
        JsonObject body = new JsonObject();
        body.addProperty("error", e.getMessage());
        body.addProperty("code", kind);
        return json(code, kind, body);
    }

    @Override
    public String toString() {
        Runtime r = runtime;
        return "KvTransferTranslator[" + (model == null ? "no model" : model.getName()) + (r == null ? ", not started" : ", " + r.role.jsonName() + ", "
                + r.connector()) + "]";
    }
}
