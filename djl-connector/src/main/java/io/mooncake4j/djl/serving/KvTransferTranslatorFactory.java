package io.mooncake4j.djl.serving;

import ai.djl.Model;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.translate.Translator;
import ai.djl.translate.TranslatorFactory;
import ai.djl.util.Pair;
import java.lang.reflect.Type;
import java.util.Map;
import java.util.Set;

/**
 * Builds a {@link KvTransferTranslator} from DJL Java code, where arguments may be objects (for
 * example a {@link PrefillClient} as {@code prefill_client}):
 *
 * <pre>
 * Criteria.builder().setTypes(Input.class, Output.class).optModelPath(dir).optEngine("PyTorch")
 *         .optTranslatorFactory(new KvTransferTranslatorFactory())
 *         .optArgument("blockFactory", "ai.djl.nn.IdentityBlockFactory").optOption("hasParameter", "false")
 *         .optArgument("role", "prefill").optArgument("checkpoint", "stories260K.bin") ...
 * </pre>
 *
 * <p>DJL Serving does not use this factory: its {@code serving.properties} names the translator
 * itself ({@code translator=io.mooncake4j.djl.serving.KvTransferTranslator}), which it finds in the
 * model's {@code libs/} where a {@code translatorFactory=} would not be found. The engine is
 * created with the thread context classloader of the thread that calls {@link #newInstance}.
 * Supports {@link Input} to {@link Output} only.
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
        ClassLoader context = Thread.currentThread().getContextClassLoader();
        return (Translator<I, O>) new KvTransferTranslator(model, arguments, context);
    }
}
