package io.mooncake4j.djl.serving;

import ai.djl.Model;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.nn.LambdaBlock;
import ai.djl.translate.Translator;
import ai.djl.translate.TranslatorFactory;
import ai.djl.util.Pair;
import java.lang.reflect.Type;
import java.util.Map;
import java.util.Set;

/**
 * Makes a DJL model a prefill or decode worker that moves KV caches with Mooncake4j. In DJL
 * Serving's {@code serving.properties}:
 *
 * <pre>
 * engine=PyTorch
 * translatorFactory=io.mooncake4j.djl.serving.KvTransferTranslatorFactory
 * blockFactory=io.mooncake4j.djl.serving.IdentityBlockFactory
 * option.hasParameter=false
 * role=prefill                  # or decode (option.role also works)
 * checkpoint=stories260K.bin    # llama2.c checkpoint, relative to the model directory
 * tokenizer=tok512.bin
 * MC_KV_MODE=push               # push (default) or pull; other MC_KV_* keys likewise
 * MC_KV_NUM_BLOCKS=4096
 * prefill_url=http://prefill:8080/predictions/llama   # decode only, for the decode-first flow
 * </pre>
 *
 * <p>The transport comes from {@code MOONCAKE_PROTOCOL} (and {@code MC_*}) through {@link
 * io.mooncake4j.TransferEngine#fromEnvironment()}, on one engine per process created on first use
 * with the thread context classloader DJL Serving set when it loaded the model. Supports {@link
 * Input} to {@link Output} only.
 */
public final class KvTransferTranslatorFactory implements TranslatorFactory {
    private static final Set<Pair<Type, Type>> SUPPORTED = Set.of(new Pair<>(Input.class, Output.class));

    @Override
    public Set<Pair<Type, Type>> getSupportedTypes() {
        return SUPPORTED;
    }

    @Override
    @SuppressWarnings("unchecked")
    public <I, O> Translator<I, O> newInstance(Class<I> input, Class<O> output, Model model, Map<String, ?> arguments) {
        if (!isSupported(input, output)) {
            throw new IllegalArgumentException("KvTransferTranslatorFactory serves Input -> Output, not "
                    + input.getName() + " -> " + output.getName());
        }
        if (model.getBlock() == null) {
            // the translator does the work; the predictor runs an identity
            model.setBlock(new LambdaBlock(list -> list, "mooncake4j-kv-identity"));
        }
        ClassLoader context = Thread.currentThread().getContextClassLoader();
        return (Translator<I, O>) new KvTransferTranslator(model, arguments, context);
    }
}
