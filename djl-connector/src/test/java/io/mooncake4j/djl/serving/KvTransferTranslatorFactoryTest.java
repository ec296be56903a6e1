package io.mooncake4j.djl.serving;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.djl.inference.Predictor;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.repository.zoo.Criteria;
import ai.djl.repository.zoo.ZooModel;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvTestSupport;
import io.mooncake4j.testkit.FakeGpu;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prefill and decode DJL models built through {@link KvTransferTranslatorFactory} inside a fresh
 * {@link URLClassLoader} set as the thread context classloader: the transport exists only there,
 * so the engine must be created with that loader. Generation split across the two models must
 * equal generation in one process, token for token.
 */
@Tag("integration")
@Timeout(120)
class KvTransferTranslatorFactoryTest {
    private static final String PROMPT = "Once upon a time";
    private static final int NEW_TOKENS = 24;

    @TempDir
    Path pluginDir;

    Path models;
    URLClassLoader pluginLoader;
    ClassLoader previous;
    int promptLength;

    @BeforeEach
    void setUp() throws Exception {
        models = GreedyReference.findModels();
        assumeTrue(models != null, "stories260K.bin and tok512.bin not found (shared/models or -Dmooncake4j.models)");
        KvTestSupport.newManager().close(); // DJL offline settings
        SharedTransferEngine.close();
        Path services = pluginDir.resolve("META-INF/services/io.mooncake4j.spi.TransportProvider");
        Files.createDirectories(services.getParent());
        Files.writeString(services, ContextOnlyTransportProvider.class.getName() + "\n", StandardCharsets.UTF_8);
        pluginLoader = new URLClassLoader(new URL[] {pluginDir.toUri().toURL()}, getClass().getClassLoader());
        System.setProperty(EngineConfig.propertyName(EngineConfig.PROTOCOL), ContextOnlyTransportProvider.PROTOCOL);
        System.setProperty(EngineConfig.propertyName(EngineConfig.LOCAL_HOSTNAME), "127.0.0.1");
        previous = Thread.currentThread().getContextClassLoader();
    }

    @AfterEach
    void tearDown() throws Exception {
        if (previous != null) {
            Thread.currentThread().setContextClassLoader(previous);
        }
        SharedTransferEngine.close();
        System.clearProperty(EngineConfig.propertyName(EngineConfig.PROTOCOL));
        System.clearProperty(EngineConfig.propertyName(EngineConfig.LOCAL_HOSTNAME));
        if (pluginLoader != null) {
            pluginLoader.close();
        }
    }

    private ZooModel<Input, Output> load(String role, Map<String, Object> extra) throws Exception {
        Criteria.Builder<Input, Output> b = Criteria.builder()
                .setTypes(Input.class, Output.class)
                .optModelPath(models)
                .optModelName("stories260K-" + role)
                .optEngine("PyTorch")
                // as serving.properties would say it
                .optArgument("blockFactory", "ai.djl.nn.IdentityBlockFactory")
                .optOption("hasParameter", "false")
                .optArgument("role", role)
                .optArgument("checkpoint", GreedyReference.CHECKPOINT)
                .optArgument("tokenizer", GreedyReference.TOKENIZER)
                .optArgument("MC_KV_NUM_BLOCKS", "256")
                .optArgument("kv_block_tokens", "4");
        if (role.equals("prefill")) {
            b.optTranslatorFactory(new KvTransferTranslatorFactory());
        } else {
            b.optArgument("translatorFactory", KvTransferTranslatorFactory.class.getName());
        }
        extra.forEach(b::optArgument);
        return b.build().loadModel();
    }

    private static JsonObject call(Predictor<Input, Output> p, JsonObject request) throws Exception {
        Input in = new Input();
        in.add("data", request.toString());
        Output out = p.predict(in);
        JsonObject body = JsonParser.parseString(out.getData().getAsString()).getAsJsonObject();
        body.addProperty("_status", out.getCode());
        return body;
    }

    /** Prefill first: prefill answers, then decode claims the KV cache; both must answer 200. */
    private static JsonObject[] prefillThenDecode(Predictor<Input, Output> prefill, Predictor<Input, Output> decode,
            String requestId, String mode) throws Exception {
        JsonObject preq = new JsonObject();
        preq.addProperty("request_id", requestId);
        preq.addProperty("prompt", PROMPT);
        preq.addProperty("max_new_tokens", NEW_TOKENS);
        preq.addProperty("kv_mode", mode);
        JsonObject presp = call(prefill, preq);
        assertEquals(200, presp.get("_status").getAsInt(), presp.toString());
        JsonObject dreq = new JsonObject();
        dreq.add("kv_transfer_params", presp.get("kv_transfer_params"));
        JsonObject dresp = call(decode, dreq);
        assertEquals(200, dresp.get("_status").getAsInt(), dresp.toString());
        return new JsonObject[] {presp, dresp};
    }

    private int[] reference() throws Exception {
        GreedyReference ref = GreedyReference.generate(models, PROMPT, NEW_TOKENS);
        promptLength = ref.promptLength();
        assertTrue(ref.tokens().length > promptLength + 1, "the reference must decode past the first token");
        return ref.tokens();
    }

    private static int[] ints(JsonArray a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = a.get(i).getAsInt();
        }
        return r;
    }

    @Test
    void shouldFindTheTransportOnlyThroughTheContextClassLoader() {
        MooncakeException e = assertThrows(MooncakeException.class, () -> TransferEngine.create(
                EngineConfig.builder().protocol(ContextOnlyTransportProvider.PROTOCOL).build()));
        assertEquals(ErrorCode.TRANSPORT_UNAVAILABLE, e.code());
        Thread.currentThread().setContextClassLoader(pluginLoader);
        TransferEngine engine = SharedTransferEngine.get(pluginLoader);
        assertEquals(ContextOnlyTransportProvider.PROTOCOL, engine.protocol());
    }

    @Test
    @SuppressWarnings("try") // closes the decode model inside its try to check its connector closes
    void shouldSplitGenerationAcrossPrefillAndDecodeModelsTokenForToken() throws Exception {
        int[] expected = reference();
        assertTrue(promptLength >= 4, "the prompt must fill a whole block for the prefix cache to matter");
        Thread.currentThread().setContextClassLoader(pluginLoader);
        try (ZooModel<Input, Output> prefillModel = load("prefill", Map.of());
                Predictor<Input, Output> prefill = prefillModel.newPredictor();
                Predictor<Input, Output> prefillForDecode = prefillModel.newPredictor();
                ZooModel<Input, Output> decodeModel = load("decode", Map.of(
                        "prefill_client", (PrefillClient) req -> call(prefillForDecode, req),
                        "MC_KV_PREFIX_CACHE_BLOCKS", "64"));
                Predictor<Input, Output> decode = decodeModel.newPredictor()) {
            // prefill first, push (default) and pull
            for (String mode : new String[] {"push", "pull"}) {
                JsonObject[] answers = prefillThenDecode(prefill, decode, "pf-" + mode, mode);
                assertEquals(expected[promptLength], answers[0].get("first_token").getAsInt());
                JsonObject dresp = answers[1];
                assertArrayEquals(expected, ints(dresp.getAsJsonArray("tokens")), "mode " + mode);
                JsonObject transfer = dresp.getAsJsonObject("transfer");
                assertEquals(mode, transfer.get("mode").getAsString());
                assertTrue(transfer.get("bytes").getAsLong() > 0, transfer.toString());
                assertEquals(5 * 2, transfer.get("requests").getAsInt(), "5 layers x {K, V}, one run");
                assertFalse(dresp.get("text").getAsString().isEmpty());
                // the second request finds the first prompt's whole blocks in the prefix cache
                int hit = dresp.get("prefix_hit_tokens").getAsInt();
                assertEquals(mode.equals("push") ? 0 : promptLength / 4 * 4, hit);
                assertEquals(hit, transfer.get("start_token").getAsInt());
                assertEquals(5 * 2L * (4 * 4 * 8 * 4) * ((promptLength + 3) / 4 - hit / 4), transfer.get("bytes").getAsLong());
            }
            // decode first: decode allocates, asks prefill through the client, prefill pushes
            JsonObject dreq = new JsonObject();
            dreq.addProperty("request_id", "df-1");
            dreq.addProperty("prompt", PROMPT);
            dreq.addProperty("max_new_tokens", NEW_TOKENS);
            JsonObject dresp = call(decode, dreq);
            assertEquals(200, dresp.get("_status").getAsInt(), dresp.toString());
            assertArrayEquals(expected, ints(dresp.getAsJsonArray("tokens")));
            assertEquals("push", dresp.getAsJsonObject("transfer").get("mode").getAsString());
            assertEquals(promptLength / 4 * 4, dresp.get("prefix_hit_tokens").getAsInt());
            // a bad request answers a JSON error, not an exception
            JsonObject broken = new JsonObject();
            broken.add("kv_transfer_params", JsonParser.parseString("{\"block_ids\": [1]}"));
            JsonObject bad = call(decode, broken);
            assertEquals(400, bad.get("_status").getAsInt());
            assertEquals("INVALID_PARAMS", bad.get("code").getAsString());
            Output empty = decode.predict(new Input()); // what DJL Serving makes of a form-encoded body
            assertEquals(400, empty.getCode());
            assertTrue(empty.getData().getAsString().contains("Content-Type: application/json"),
                    empty.getData().getAsString());

            TransferEngine engine = SharedTransferEngine.peek();
            assertNotNull(engine);
            assertEquals(ContextOnlyTransportProvider.PROTOCOL, engine.protocol());
            KvTransferTranslator pt = (KvTransferTranslator) prefillModel.getTranslator();
            KvTransferTranslator dt = (KvTransferTranslator) decodeModel.getTranslator();
            assertEquals(KvRole.PREFILL, pt.role());
            assertEquals(KvRole.DECODE, dt.role());
            assertEquals(promptLength / 4, dt.connector().pool().allocator().usedBlocks(), "only the prefix cache's");
            assertEquals(0, pt.connector().pool().allocator().usedBlocks());
            decodeModel.close();
            assertTrue(dt.connector().isClosed(), "closing the model closes its connector");
        }
    }

    @Test
    void shouldSplitGenerationTokenForTokenWhenBothPoolsAreInGpuMemory() throws Exception {
        int[] expected = reference();
        // the models' engine also finds the test kit's fake GPU (host memory it calls cuda:0)
        Path gpu = pluginDir.resolve("META-INF/services/io.mooncake4j.spi.DeviceMemoryProvider");
        Files.writeString(gpu, FakeGpu.class.getName() + "\n", StandardCharsets.UTF_8);
        Thread.currentThread().setContextClassLoader(pluginLoader);
        int copies = FakeGpu.COPY_CALLS.get();
        try (ZooModel<Input, Output> prefillModel = load("prefill", Map.of("kv_location", "cuda:0"));
                Predictor<Input, Output> prefill = prefillModel.newPredictor();
                ZooModel<Input, Output> decodeModel = load("decode", Map.of("kv_location", "cuda:0"));
                Predictor<Input, Output> decode = decodeModel.newPredictor()) {
            for (String mode : new String[] {"push", "pull"}) {
                JsonObject dresp = prefillThenDecode(prefill, decode, "gpu-" + mode, mode)[1];
                assertArrayEquals(expected, ints(dresp.getAsJsonArray("tokens")), "mode " + mode);
            }
            KvTransferTranslator dt = (KvTransferTranslator) decodeModel.getTranslator();
            assertEquals(MemoryLocation.cuda(0), dt.connector().pool().location());
            assertTrue(FakeGpu.COPY_CALLS.get() > copies, "the blocks moved through the device copier");
        }
    }
}
