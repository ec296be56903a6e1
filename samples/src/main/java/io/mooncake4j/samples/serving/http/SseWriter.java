package io.mooncake4j.samples.serving.http;

import com.google.gson.JsonElement;
import com.sun.net.httpserver.HttpExchange;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * A Server-Sent Events response as OpenAI streams completions: {@code data: {json}} events, each
 * flushed at once, ending with {@code data: [DONE]}. Not thread safe.
 */
public final class SseWriter {
    /** The last event of an OpenAI stream. */
    public static final String DONE = "[DONE]";

    private final OutputStream out;
    private boolean finished;

    private SseWriter(OutputStream out) {
        this.out = out;
    }

    /** Sends the 200 headers of an event stream (chunked) and returns the writer. */
    public static SseWriter begin(HttpExchange exchange) throws IOException {
        exchange.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        exchange.getResponseHeaders().set("Cache-Control", "no-cache");
        exchange.getResponseHeaders().set("X-Accel-Buffering", "no");
        exchange.sendResponseHeaders(200, 0);
        return new SseWriter(exchange.getResponseBody());
    }

    /** Sends one {@code data:} event. */
    public void event(JsonElement data) throws IOException {
        raw(data.toString());
    }

    /** Sends one {@code data:} event with a text payload (one line). */
    public void raw(String data) throws IOException {
        out.write(("data: " + data + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    /** Sends {@code data: [DONE]} and ends the response. Idempotent. */
    public void done() throws IOException {
        if (!finished) {
            finished = true;
            raw(DONE);
            out.close();
        }
    }
}
