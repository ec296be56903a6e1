package io.mooncake4j.samples.serving.http;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.mooncake4j.samples.serving.http.Http.HttpError;
import org.junit.jupiter.api.Test;

class CompletionRequestTest {
    private static CompletionRequest parse(String json) {
        return CompletionRequest.parse(JsonParser.parseString(json).getAsJsonObject());
    }

    @Test
    void shouldApplyOpenAiDefaults() {
        CompletionRequest r = parse("{\"prompt\": \"Once upon a time\"}");
        assertEquals("Once upon a time", r.prompt());
        assertNull(r.promptTokens());
        assertEquals(CompletionRequest.DEFAULT_MAX_TOKENS, r.maxTokens());
        assertEquals(1f, r.temperature());
        assertEquals(1f, r.topP());
        assertFalse(r.stream());
        assertNull(r.seed());
        assertNull(r.model());
        assertEquals(0, r.steps());
    }

    @Test
    void shouldReadEveryField() {
        CompletionRequest r = parse("{\"model\": \"stories260K\", \"prompt\": [1, 403, 407], \"max_tokens\": 5,"
                + " \"temperature\": 0, \"top_p\": 0.9, \"seed\": 7, \"stream\": true, \"return_token_ids\": true,"
                + " \"steps\": 64}");
        assertEquals("stories260K", r.model());
        assertArrayEquals(new int[] {1, 403, 407}, r.promptTokens());
        assertEquals(5, r.maxTokens());
        assertEquals(0f, r.temperature());
        assertEquals(0.9f, r.topP());
        assertEquals(7L, r.seed());
        assertTrue(r.stream());
        assertTrue(r.returnTokenIds());
        assertEquals(64, r.steps());
    }

    @Test
    void shouldRefuseAClientChosenPrefillUrl() {
        HttpError e = assertThrows(HttpError.class,
                () -> parse("{\"prompt\": \"x\", \"kv_prefill_url\": \"http://169.254.169.254\"}"));
        assertEquals(400, e.status());
        assertTrue(e.getMessage().contains("--prefill"), e.getMessage());
    }

    @Test
    void shouldAcceptASinglePromptInAnArray() {
        assertEquals("hi", parse("{\"prompt\": [\"hi\"]}").prompt());
    }

    @Test
    void shouldRejectWhatItCannotServeWith400() {
        for (String bad : new String[] {
            "{\"prompt\": \"x\", \"max_tokens\": 0}",
            "{\"prompt\": \"x\", \"temperature\": -1}",
            "{\"prompt\": \"x\", \"top_p\": 0}",
            "{\"prompt\": \"x\", \"n\": 2}",
            "{\"prompt\": [[1, 2], [3]]}",
            "{\"prompt\": []}",
            "{\"prompt\": {\"a\": 1}}",
            "{\"prompt\": \"x\", \"max_tokens\": \"many\"}",
        }) {
            HttpError e = assertThrows(HttpError.class, () -> parse(bad), bad);
            assertEquals(400, e.status(), bad);
        }
    }

    @Test
    void shouldBuildTheBodyClientsSend() {
        JsonObject o = CompletionRequest.body(null, "p", 3, 0f, true);
        CompletionRequest r = CompletionRequest.parse(o);
        assertEquals("p", r.prompt());
        assertEquals(3, r.maxTokens());
        assertTrue(r.stream());
        assertFalse(o.has("model"));
    }
}
