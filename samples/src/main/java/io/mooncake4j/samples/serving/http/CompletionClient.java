package io.mooncake4j.samples.serving.http;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Iterator;
import java.util.stream.Stream;

/**
 * A client of {@code POST /v1/completions} (the router's or a decode worker's) that times what a
 * user sees: time to the first token, time per output token and end-to-end latency. Thread safe.
 */
public final class CompletionClient {
    private final URI base;
    private final HttpClient client;
    private final Duration timeout;

    /** A client of the server at {@code baseUrl} ({@code http://host:port}). */
    public CompletionClient(String baseUrl, Duration timeout) {
        String u = baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl;
        this.base = URI.create(u);
        this.timeout = timeout;
        this.client = Http.newClient(Duration.ofSeconds(10));
    }

    /** The server's base URL. */
    public URI base() {
        return base;
    }

    /** Receives a streamed completion as it arrives. */
    public interface Listener {
        /** The first chunk's prompt token ids (when {@code return_token_ids} was asked). */
        default void onPrompt(int[] promptTokenIds) {}

        /** One generated token: its text (may be empty mid-character) and id (-1 when not returned). */
        void onToken(String text, int tokenId);
    }

    /** A failed request: the HTTP status (0 when unreachable) and the server's message. */
    public static final class CompletionException extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final int status;

        CompletionException(int status, String message, Throwable cause) {
            super(message, cause);
            this.status = status;
        }

        /** The HTTP status, 0 when there was no answer. */
        public int status() {
            return status;
        }
    }

    /** {@code GET path} as JSON, with the status. */
    public JsonObject getJson(String path) {
        HttpRequest req = HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofSeconds(10)).GET().build();
        try {
            HttpResponse<String> r = client.send(req, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            JsonObject o = JsonParser.parseString(r.body()).getAsJsonObject();
            o.addProperty("http_status", r.statusCode());
            return o;
        } catch (IOException e) {
            throw new CompletionException(0, base + path + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CompletionException(0, "interrupted", e);
        } catch (RuntimeException e) {
            throw new CompletionException(0, base + path + " did not answer JSON: " + e, e);
        }
    }

    /** Sends a non-streaming request ({@code stream} is set false). */
    public CompletionResult complete(JsonObject body) {
        JsonObject b = body.deepCopy();
        b.addProperty("stream", false);
        long start = System.nanoTime();
        HttpResponse<String> r;
        try {
            r = client.send(post(b), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new CompletionException(0, base + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CompletionException(0, "interrupted", e);
        }
        long end = System.nanoTime();
        if (r.statusCode() != 200) {
            throw new CompletionException(r.statusCode(), "HTTP " + r.statusCode() + ": " + Http.errorMessage(r.body()),
                    null);
        }
        JsonObject o = JsonParser.parseString(r.body()).getAsJsonObject();
        JsonObject choice = o.getAsJsonArray("choices").get(0).getAsJsonObject();
        CompletionResult.Builder res = new CompletionResult.Builder(start);
        res.text.append(choice.get("text").getAsString());
        res.finishReason = str(choice.get("finish_reason"));
        res.tokenIds = ints(choice.get("token_ids"));
        res.promptTokenIds = ints(choice.get("prompt_token_ids"));
        usage(res, o);
        res.firstNanos = end;
        res.endNanos = end;
        return res.build();
    }

    /** Sends a streaming request ({@code stream} is set true) and reads its events. */
    public CompletionResult stream(JsonObject body, Listener listener) {
        JsonObject b = body.deepCopy();
        b.addProperty("stream", true);
        long start = System.nanoTime();
        HttpResponse<Stream<String>> r;
        try {
            r = client.send(post(b), HttpResponse.BodyHandlers.ofLines());
        } catch (IOException e) {
            throw new CompletionException(0, base + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CompletionException(0, "interrupted", e);
        }
        CompletionResult.Builder res = new CompletionResult.Builder(start);
        try (Stream<String> lines = r.body()) {
            if (r.statusCode() != 200) {
                String text = String.join("\n", (Iterable<String>) lines::iterator);
                throw new CompletionException(r.statusCode(), "HTTP " + r.statusCode() + ": " + Http.errorMessage(text),
                        null);
            }
            boolean done = false;
            Iterator<String> it = lines.iterator();
            while (it.hasNext()) {
                String line = it.next();
                if (!line.startsWith("data:")) {
                    continue;
                }
                String data = line.substring(5).trim();
                if (data.equals(SseWriter.DONE)) {
                    done = true;
                    break;
                }
                JsonObject chunk = JsonParser.parseString(data).getAsJsonObject();
                if (chunk.has("error")) {
                    throw new CompletionException(502, "stream failed: " + Http.errorMessage(data), null);
                }
                usage(res, chunk);
                JsonArray choices = chunk.getAsJsonArray("choices");
                if (choices == null || choices.isEmpty()) {
                    continue;
                }
                JsonObject choice = choices.get(0).getAsJsonObject();
                int[] prompt = ints(choice.get("prompt_token_ids"));
                if (prompt != null) {
                    res.promptTokenIds = prompt;
                    listener.onPrompt(prompt);
                }
                String text = choice.has("text") ? choice.get("text").getAsString() : "";
                String finish = str(choice.get("finish_reason"));
                int[] ids = ints(choice.get("token_ids"));
                if (finish == null) {
                    long now = System.nanoTime();
                    if (res.tokens == 0) {
                        res.firstNanos = now;
                    }
                    res.lastNanos = now;
                    int id = ids != null && ids.length > 0 ? ids[0] : -1;
                    res.addToken(id);
                    res.text.append(text);
                    listener.onToken(text, id);
                } else {
                    res.text.append(text);
                    res.finishReason = finish;
                    if (!text.isEmpty()) {
                        listener.onToken(text, -1);
                    }
                }
            }
            if (!done) {
                throw new CompletionException(502, "the stream ended without data: [DONE]", null);
            }
        } catch (RuntimeException e) {
            if (e instanceof CompletionException ce) {
                throw ce;
            }
            throw new CompletionException(502, "malformed stream from " + base + ": " + e, e);
        }
        res.endNanos = System.nanoTime();
        if (res.firstNanos == 0) {
            res.firstNanos = res.endNanos;
        }
        return res.build();
    }

    private HttpRequest post(JsonObject body) {
        return HttpRequest.newBuilder(base.resolve("/v1/completions"))
                .timeout(timeout)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body.toString(), StandardCharsets.UTF_8))
                .build();
    }

    private static void usage(CompletionResult.Builder res, JsonObject o) {
        JsonElement u = o.get("usage");
        if (u != null && u.isJsonObject()) {
            JsonObject usage = u.getAsJsonObject();
            res.promptTokens = usage.get("prompt_tokens").getAsInt();
            res.completionTokens = usage.get("completion_tokens").getAsInt();
        }
        JsonElement s = o.get(CompletionResult.SERVER_FIELD);
        if (s != null && s.isJsonObject()) {
            res.server = s.getAsJsonObject();
        }
    }

    private static String str(JsonElement e) {
        return e == null || e.isJsonNull() ? null : e.getAsString();
    }

    private static int[] ints(JsonElement e) {
        if (e == null || !e.isJsonArray()) {
            return null;
        }
        JsonArray a = e.getAsJsonArray();
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = a.get(i).getAsInt();
        }
        return r;
    }
}
