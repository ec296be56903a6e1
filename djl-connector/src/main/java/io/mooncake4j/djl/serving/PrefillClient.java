package io.mooncake4j.djl.serving;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * How a decode worker asks a prefill worker for a request's KV cache in the decode-first flow: it
 * sends the prefill request (prompt tokens plus {@code kv_transfer_params}, its destination) and
 * gets back the prefill response (the first token and the generation state). The default posts
 * JSON to the prefill model's DJL Serving URL ({@code prefill_url}); an application may pass its
 * own as the model argument {@code prefill_client}.
 */
@FunctionalInterface
public interface PrefillClient {
    /**
     * Runs a prefill request on the prefill worker.
     *
     * @param request the prefill request JSON
     * @return the prefill response JSON
     * @throws Exception when the prefill worker cannot be reached or fails
     */
    JsonObject prefill(JsonObject request) throws Exception;

    /**
     * A client that POSTs the request as JSON to a URL (e.g. {@code
     * http://prefill:8080/predictions/llama}).
     *
     * @param url the prefill model's prediction URL
     * @param timeout the whole call's timeout
     * @return the client
     */
    static PrefillClient http(URI url, Duration timeout) {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        return request -> {
            HttpRequest r = HttpRequest.newBuilder(url)
                    .timeout(timeout)
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(request.toString(), StandardCharsets.UTF_8))
                    .build();
            HttpResponse<String> resp = client.send(r, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            JsonElement body;
            try {
                body = JsonParser.parseString(resp.body());
            } catch (RuntimeException e) {
                throw new KvException(KvError.PEER_ERROR, "prefill worker " + url + " answered " + resp.statusCode()
                        + " with non-JSON: " + resp.body());
            }
            if (!body.isJsonObject()) {
                throw new KvException(KvError.PEER_ERROR, "prefill worker " + url + " answered " + resp.body());
            }
            return body.getAsJsonObject();
        };
    }
}
