package io.mooncake4j.samples.serving.http;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import io.mooncake4j.samples.serving.http.Http.HttpError;

/**
 * An OpenAI {@code POST /v1/completions} request, as far as this app serves it: {@code model},
 * {@code prompt} (a string, or an array of token ids), {@code max_tokens} (default 16, as OpenAI),
 * {@code temperature} (default 1; 0 is greedy), {@code top_p} (default 1), {@code seed}, {@code
 * stream}. Extensions: {@code return_token_ids} (token ids in the choices and chunks), {@code
 * steps} (llama2.c's {@code -n}: positions in all, the prompt's included; replaces {@code
 * max_tokens}). {@code kv_prefill_url} is refused: the decode worker calls only the prefill workers
 * it was started with, never a URL a client names.
 *
 * @param model the model name asked for, or null
 * @param prompt the prompt text, or null when {@code promptTokens} is given
 * @param promptTokens the prompt as token ids, or null
 * @param maxTokens tokens to generate at most
 * @param steps run.c's step count, or 0 when not given
 * @param temperature 0 for greedy
 * @param topP nucleus sampling probability
 * @param seed the sampler's seed, or null for a random one
 * @param stream whether to stream Server-Sent Events
 * @param returnTokenIds whether to include token ids
 */
public record CompletionRequest(
        String model,
        String prompt,
        int[] promptTokens,
        int maxTokens,
        int steps,
        float temperature,
        float topP,
        Long seed,
        boolean stream,
        boolean returnTokenIds) {

    /** OpenAI's default {@code max_tokens} for completions. */
    public static final int DEFAULT_MAX_TOKENS = 16;

    /** Parses and validates a request body; {@link HttpError} 400 when it is wrong. */
    public static CompletionRequest parse(JsonObject o) {
        if (o.has("kv_prefill_url")) {
            throw HttpError.badRequest("kv_prefill_url is not accepted: the decode worker uses the prefill workers"
                    + " it was started with (--prefill)");
        }
        try {
            String model = string(o, "model");
            JsonElement p = o.get("prompt");
            String prompt = null;
            int[] tokens = null;
            if (p == null || p.isJsonNull()) {
                prompt = "";
            } else if (p.isJsonPrimitive() && p.getAsJsonPrimitive().isString()) {
                prompt = p.getAsString();
            } else if (p.isJsonArray()) {
                JsonArray a = p.getAsJsonArray();
                if (a.size() == 1 && a.get(0).isJsonPrimitive() && a.get(0).getAsJsonPrimitive().isString()) {
                    prompt = a.get(0).getAsString();
                } else if (a.size() > 0 && a.get(0).isJsonArray()) {
                    throw HttpError.badRequest("one prompt per request: send several requests for a batch");
                } else {
                    tokens = new int[a.size()];
                    for (int i = 0; i < tokens.length; i++) {
                        JsonElement e = a.get(i);
                        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
                            throw HttpError.badRequest("prompt must be a string or an array of token ids");
                        }
                        tokens[i] = e.getAsInt();
                    }
                    if (tokens.length == 0) {
                        throw HttpError.badRequest("prompt token array is empty");
                    }
                }
            } else {
                throw HttpError.badRequest("prompt must be a string or an array of token ids");
            }
            int n = integer(o, "n", 1);
            if (n != 1) {
                throw HttpError.badRequest("n must be 1: send several requests for several completions");
            }
            int steps = integer(o, "steps", 0);
            int maxTokens = integer(o, "max_tokens", DEFAULT_MAX_TOKENS);
            if (steps < 0) {
                throw HttpError.badRequest("steps must not be negative");
            }
            if (steps == 0 && maxTokens < 1) {
                throw HttpError.badRequest("max_tokens must be at least 1");
            }
            float temperature = number(o, "temperature", 1f);
            if (!(temperature >= 0) || Float.isInfinite(temperature)) {
                throw HttpError.badRequest("temperature must be a finite number >= 0");
            }
            float topP = number(o, "top_p", 1f);
            if (!(topP > 0 && topP <= 1)) {
                throw HttpError.badRequest("top_p must be in (0, 1]");
            }
            Long seed = o.has("seed") && !o.get("seed").isJsonNull() ? o.get("seed").getAsLong() : null;
            boolean stream = bool(o, "stream");
            boolean ids = bool(o, "return_token_ids");
            return new CompletionRequest(model, prompt, tokens, maxTokens, steps, temperature, topP, seed, stream, ids);
        } catch (HttpError e) {
            throw e;
        } catch (RuntimeException e) {
            throw HttpError.badRequest("malformed completion request: " + e.getMessage());
        }
    }

    private static String string(JsonObject o, String k) {
        JsonElement e = o.get(k);
        return e == null || e.isJsonNull() ? null : e.getAsString();
    }

    private static int integer(JsonObject o, String k, int dflt) {
        JsonElement e = o.get(k);
        if (e == null || e.isJsonNull()) {
            return dflt;
        }
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            throw HttpError.badRequest(k + " must be an integer");
        }
        return e.getAsInt();
    }

    private static float number(JsonObject o, String k, float dflt) {
        JsonElement e = o.get(k);
        if (e == null || e.isJsonNull()) {
            return dflt;
        }
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            throw HttpError.badRequest(k + " must be a number");
        }
        return e.getAsFloat();
    }

    private static boolean bool(JsonObject o, String k) {
        JsonElement e = o.get(k);
        if (e == null || e.isJsonNull()) {
            return false;
        }
        JsonPrimitive p = e.getAsJsonPrimitive();
        return p.isBoolean() ? p.getAsBoolean() : Boolean.parseBoolean(p.getAsString());
    }

    /** A request body with the common fields (what the clients of this app send). */
    public static JsonObject body(String model, String prompt, int maxTokens, float temperature, boolean stream) {
        JsonObject o = new JsonObject();
        if (model != null) {
            o.addProperty("model", model);
        }
        o.addProperty("prompt", prompt);
        o.addProperty("max_tokens", maxTokens);
        o.addProperty("temperature", temperature);
        o.addProperty("stream", stream);
        return o;
    }
}
