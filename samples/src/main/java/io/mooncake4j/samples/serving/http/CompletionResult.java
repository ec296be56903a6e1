package io.mooncake4j.samples.serving.http;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.util.Arrays;

/**
 * One completion as a client saw it, with its timings, and the server's own figures (the {@value
 * #SERVER_FIELD} object of the response: KV transfer bytes and time, prefill and decode times).
 *
 * @param text the generated text
 * @param tokenIds the generated token ids when returned, else null
 * @param promptTokenIds the prompt's token ids when returned, else null
 * @param promptTokens the prompt's length in tokens (usage)
 * @param completionTokens the generated tokens (usage)
 * @param finishReason {@code length} or {@code stop}
 * @param startNanos when the request was sent
 * @param firstNanos when the first token arrived (for a non-streaming request: the response)
 * @param lastNanos when the last token arrived
 * @param endNanos when the response ended
 * @param server the server's figures, or null
 */
public record CompletionResult(
        String text,
        int[] tokenIds,
        int[] promptTokenIds,
        int promptTokens,
        int completionTokens,
        String finishReason,
        long startNanos,
        long firstNanos,
        long lastNanos,
        long endNanos,
        JsonObject server) {

    /** The response field with the server's figures. */
    public static final String SERVER_FIELD = "mooncake4j";

    /** Time to first token, ms. */
    public double ttftMillis() {
        return (firstNanos - startNanos) / 1e6;
    }

    /** Time per output token after the first, ms; NaN with fewer than two tokens. */
    public double tpotMillis() {
        int n = completionTokens;
        return n < 2 ? Double.NaN : (lastNanos - firstNanos) / 1e6 / (n - 1);
    }

    /** End-to-end latency, ms. */
    public double e2eMillis() {
        return (endNanos - startNanos) / 1e6;
    }

    /** A server figure as a number, or NaN when absent. */
    public double serverNumber(String field) {
        if (server == null) {
            return Double.NaN;
        }
        JsonElement e = server.get(field);
        return e == null || e.isJsonNull() ? Double.NaN : e.getAsDouble();
    }

    /** The whole sequence, prompt then generated tokens, when both were returned; else null. */
    public int[] allTokenIds() {
        if (promptTokenIds == null || tokenIds == null) {
            return null;
        }
        int[] all = Arrays.copyOf(promptTokenIds, promptTokenIds.length + tokenIds.length);
        System.arraycopy(tokenIds, 0, all, promptTokenIds.length, tokenIds.length);
        return all;
    }

    static final class Builder {
        final long startNanos;
        final StringBuilder text = new StringBuilder();
        int[] tokenIds;
        int[] promptTokenIds;
        int[] streamed = new int[16];
        boolean idsMissing;
        int tokens;
        int promptTokens = -1;
        int completionTokens = -1;
        String finishReason;
        long firstNanos;
        long lastNanos;
        long endNanos;
        JsonObject server;

        Builder(long startNanos) {
            this.startNanos = startNanos;
        }

        void addToken(int id) {
            if (id < 0) {
                idsMissing = true;
            }
            if (tokens == streamed.length) {
                streamed = Arrays.copyOf(streamed, tokens * 2);
            }
            streamed[tokens++] = id;
        }

        CompletionResult build() {
            int[] ids = tokenIds;
            if (ids == null && tokens > 0 && !idsMissing) {
                ids = Arrays.copyOf(streamed, tokens);
            }
            if (ids == null && tokens == 0 && promptTokenIds != null) {
                ids = new int[0];
            }
            int completion = completionTokens >= 0 ? completionTokens : tokens;
            long last = lastNanos == 0 ? endNanos : lastNanos;
            return new CompletionResult(text.toString(), ids, promptTokenIds, promptTokens, completion, finishReason,
                    startNanos, firstNanos, last, endNanos, server);
        }
    }
}
