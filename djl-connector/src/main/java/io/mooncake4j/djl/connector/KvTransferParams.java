package io.mooncake4j.djl.connector;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.KvPart;
import java.util.Arrays;
import java.util.Locale;
import java.util.Objects;

/**
 * Where one request's KV cache is, or where it should go: the small JSON document that rides
 * between decode and prefill workers in the application's HTTP requests (as vLLM's {@code
 * kv_transfer_params}) or in engine notifications.
 *
 * <pre>{@code
 * {"request_id": "r1", "role": "decode", "mode": "push",
 *  "engine": "10.0.0.2:15123", "connector": "kv-3f2a...",
 *  "num_tokens": 100, "start_token": 32, "block_ids": [7, 8, 9, 10, 11],
 *  "layout": {"layers": 32, "kv_heads": 8, "head_size": 128, "block_tokens": 16, "num_blocks": 4096,
 *             "dtype": "float32", "block_bytes": 65536},
 *  "k_bases": [140230000000000, ...], "v_bases": [...],
 *  "expires_in_ms": 119000, "expires_at_ms": 1795000000000}
 * }</pre>
 *
 * <p>{@code role} says who wrote it: {@code decode} (a destination: write positions {@code
 * [start_token, num_tokens)} into {@code block_ids}) or {@code prefill} (a source: the blocks hold
 * them). Block {@code block_ids[i]} holds positions from {@code start_token + i * block_tokens};
 * its keys of layer {@code L} are at {@code k_bases[L] + block_ids[i] * block_bytes} in the
 * segment {@code engine}. Unknown top-level fields are kept ({@link #extra()}), so an application
 * may add its own (e.g. {@code first_token}).
 */
public final class KvTransferParams {
    /** Who wrote the parameters. */
    public enum Role {
        /** A prefill worker: the blocks hold the KV cache (a source). */
        PREFILL,
        /** A decode worker: the blocks are where the KV cache should go (a destination). */
        DECODE;

        String jsonName() {
            return name().toLowerCase(Locale.ROOT);
        }

        static Role parse(String s) {
            for (Role r : values()) {
                if (r.name().equalsIgnoreCase(s)) {
                    return r;
                }
            }
            throw new KvException(KvError.INVALID_PARAMS, "unknown role '" + s + "' in kv_transfer_params: use prefill or decode");
        }
    }

    private static final String[] KNOWN = {
        "request_id", "role", "mode", "engine", "connector", "num_tokens", "start_token", "block_ids", "layout",
        "k_bases", "v_bases", "expires_in_ms", "expires_at_ms"
    };

    private final String requestId;
    private final Role role;
    private final TransferMode mode;
    private final String engine;
    private final String connector;
    private final int numTokens;
    private final int startToken;
    private final int[] blockIds;
    private final KvLayout layout;
    private final long[] kBases;
    private final long[] vBases;
    private final long expiresInMillis;
    private final long expiresAtMillis;
    private final JsonObject extra;

    /**
     * Parameters from their parts (the connector builds them; applications normally parse them).
     *
     * @param requestId the request id
     * @param role who wrote them
     * @param mode push or pull
     * @param engine the writer's segment name
     * @param connector the writer's connector id
     * @param numTokens the positions of the request's prompt
     * @param startToken the first position {@code blockIds} covers, a multiple of the block size
     * @param blockIds the blocks holding positions {@code [startToken, numTokens)}
     * @param layout the writer's layout
     * @param kBases per layer, the absolute address of block 0 of the keys
     * @param vBases per layer, the absolute address of block 0 of the values
     * @param expiresInMillis how long the parameters stay valid after they were written, or 0
     * @param expiresAtMillis when they stop being valid, in epoch milliseconds of the writer's
     *     clock, or 0
     * @param extra application fields, or null
     */
    public KvTransferParams(String requestId, Role role, TransferMode mode, String engine, String connector,
            int numTokens, int startToken, int[] blockIds, KvLayout layout, long[] kBases, long[] vBases,
            long expiresInMillis, long expiresAtMillis, JsonObject extra) {
        this.requestId = require(requestId, "request_id");
        this.role = Objects.requireNonNull(role, "role");
        this.mode = Objects.requireNonNull(mode, "mode");
        this.engine = require(engine, "engine");
        this.connector = require(connector, "connector");
        this.numTokens = numTokens;
        this.startToken = startToken;
        this.blockIds = blockIds.clone();
        this.layout = Objects.requireNonNull(layout, "layout");
        this.kBases = kBases.clone();
        this.vBases = vBases.clone();
        this.expiresInMillis = expiresInMillis;
        this.expiresAtMillis = expiresAtMillis;
        this.extra = extra == null ? new JsonObject() : extra.deepCopy();
        validate();
    }

    private void validate() {
        int bt = layout.blockTokens();
        if (numTokens < 0 || startToken < 0 || startToken > numTokens || startToken % bt != 0) {
            throw invalid("start_token " + startToken + " must be a multiple of block_tokens " + bt
                    + " within [0, num_tokens " + numTokens + "]");
        }
        int want = layout.blocksFor(numTokens) - startToken / bt;
        if (blockIds.length != want) {
            throw invalid(blockIds.length + " block_ids for positions [" + startToken + ", " + numTokens + ") but "
                    + want + " blocks of " + bt + " positions are needed");
        }
        if (kBases.length != layout.layers() || vBases.length != layout.layers()) {
            throw invalid("k_bases and v_bases need one address per layer (" + layout.layers() + "), got "
                    + kBases.length + " and " + vBases.length);
        }
        for (int b : blockIds) {
            if (b < 0) {
                throw invalid("negative block id " + b);
            }
        }
    }

    private static String require(String s, String field) {
        if (s == null || s.isEmpty()) {
            throw new KvException(KvError.INVALID_PARAMS, "kv_transfer_params." + field + " is missing");
        }
        return s;
    }

    private KvException invalid(String why) {
        return new KvException(KvError.INVALID_PARAMS, "kv_transfer_params of request " + requestId + ": " + why);
    }

    /** The request id both sides use. */
    public String requestId() {
        return requestId;
    }

    /** Who wrote the parameters. */
    public Role role() {
        return role;
    }

    /** Push or pull. */
    public TransferMode mode() {
        return mode;
    }

    /** The writer's segment name (its engine's {@code host:port}). */
    public String engine() {
        return engine;
    }

    /** The writer's connector id, which notifications are addressed to. */
    public String connector() {
        return connector;
    }

    /** The positions of the request's prompt. */
    public int numTokens() {
        return numTokens;
    }

    /** The first position the blocks cover (positions before it are a prefix the decode side already holds). */
    public int startToken() {
        return startToken;
    }

    /** A copy of the block ids. */
    public int[] blockIds() {
        return blockIds.clone();
    }

    /** The number of block ids. */
    public int blockCount() {
        return blockIds.length;
    }

    /** Block id {@code i}. */
    public int blockId(int i) {
        return blockIds[i];
    }

    /** The writer's layout. */
    public KvLayout layout() {
        return layout;
    }

    /** The absolute address of block 0 of a (layer, part) in the writer's segment. */
    public long base(int layer, KvPart part) {
        return part == KvPart.KEY ? kBases[layer] : vBases[layer];
    }

    /** How long the parameters stay valid after they were written, in ms; 0 for no limit. */
    public long expiresInMillis() {
        return expiresInMillis;
    }

    /**
     * When the parameters stop being valid, in epoch ms of the writer's clock (0 for no limit): a
     * prefill worker starts no push into an expired destination, since the decode worker has
     * given up on it and will reuse the blocks.
     */
    public long expiresAtMillis() {
        return expiresAtMillis;
    }

    /** The application's extra fields (a copy). */
    public JsonObject extra() {
        return extra.deepCopy();
    }

    /** These parameters with an application field added (e.g. {@code first_token}). */
    public KvTransferParams withExtra(String field, JsonElement value) {
        for (String k : KNOWN) {
            if (k.equals(field)) {
                throw new KvException(KvError.INVALID_PARAMS, "'" + field + "' is a reserved kv_transfer_params field");
            }
        }
        JsonObject e = extra.deepCopy();
        e.add(field, value);
        return new KvTransferParams(requestId, role, mode, engine, connector, numTokens, startToken, blockIds,
                layout, kBases, vBases, expiresInMillis, expiresAtMillis, e);
    }

    /** The JSON form (see the class comment). */
    public JsonObject toJson() {
        JsonObject o = extra.deepCopy();
        o.addProperty("request_id", requestId);
        o.addProperty("role", role.jsonName());
        o.addProperty("mode", mode.jsonName());
        o.addProperty("engine", engine);
        o.addProperty("connector", connector);
        o.addProperty("num_tokens", numTokens);
        o.addProperty("start_token", startToken);
        JsonArray ids = new JsonArray(blockIds.length);
        for (int b : blockIds) {
            ids.add(b);
        }
        o.add("block_ids", ids);
        o.add("layout", layout.toJson());
        o.add("k_bases", longs(kBases));
        o.add("v_bases", longs(vBases));
        if (expiresInMillis > 0) {
            o.addProperty("expires_in_ms", expiresInMillis);
        }
        if (expiresAtMillis > 0) {
            o.addProperty("expires_at_ms", expiresAtMillis);
        }
        return o;
    }

    /** The compact JSON text. */
    public String toJsonString() {
        return toJson().toString();
    }

    /** Parses the JSON form. */
    public static KvTransferParams fromJson(JsonObject o) {
        try {
            JsonObject extra = new JsonObject();
            for (String k : o.keySet()) {
                if (!Arrays.asList(KNOWN).contains(k)) {
                    extra.add(k, o.get(k).deepCopy());
                }
            }
            return new KvTransferParams(
                    string(o, "request_id"),
                    Role.parse(string(o, "role")),
                    TransferMode.parse(string(o, "mode")),
                    string(o, "engine"),
                    string(o, "connector"),
                    o.get("num_tokens").getAsInt(),
                    o.has("start_token") ? o.get("start_token").getAsInt() : 0,
                    ints(o.getAsJsonArray("block_ids")),
                    KvLayout.fromJson(o.getAsJsonObject("layout")),
                    longs(o.getAsJsonArray("k_bases")),
                    longs(o.getAsJsonArray("v_bases")),
                    o.has("expires_in_ms") ? o.get("expires_in_ms").getAsLong() : 0,
                    o.has("expires_at_ms") ? o.get("expires_at_ms").getAsLong() : 0,
                    extra);
        } catch (KvException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new KvException(KvError.INVALID_PARAMS, "malformed kv_transfer_params: " + e.getMessage(), e);
        }
    }

    /** Parses the JSON text. */
    public static KvTransferParams parse(String json) {
        JsonElement e;
        try {
            e = JsonParser.parseString(json);
        } catch (RuntimeException ex) {
            throw new KvException(KvError.INVALID_PARAMS, "kv_transfer_params is not JSON: " + ex.getMessage(), ex);
        }
        if (!e.isJsonObject()) {
            throw new KvException(KvError.INVALID_PARAMS, "kv_transfer_params must be a JSON object: " + json);
        }
        return fromJson(e.getAsJsonObject());
    }

    private static String string(JsonObject o, String field) {
        JsonElement e = o.get(field);
        if (e == null || e.isJsonNull()) {
            throw new KvException(KvError.INVALID_PARAMS, "kv_transfer_params." + field + " is missing");
        }
        return e.getAsString();
    }

    private static int[] ints(JsonArray a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = a.get(i).getAsInt();
        }
        return r;
    }

    private static long[] longs(JsonArray a) {
        long[] r = new long[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = a.get(i).getAsLong();
        }
        return r;
    }

    private static JsonArray longs(long[] v) {
        JsonArray a = new JsonArray(v.length);
        for (long x : v) {
            a.add(x);
        }
        return a;
    }

    @Override
    public String toString() {
        return "KvTransferParams" + toJson();
    }
}
