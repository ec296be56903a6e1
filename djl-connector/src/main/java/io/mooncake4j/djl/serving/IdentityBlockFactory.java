package io.mooncake4j.djl.serving;

import ai.djl.Model;
import ai.djl.nn.Block;
import ai.djl.nn.BlockFactory;
import ai.djl.nn.LambdaBlock;
import java.nio.file.Path;
import java.util.Map;

/**
 * A parameterless identity block, so DJL can load a model whose work the {@link
 * KvTransferTranslator} does: {@code blockFactory=io.mooncake4j.djl.serving.IdentityBlockFactory}
 * and {@code option.hasParameter=false} in {@code serving.properties}.
 */
public final class IdentityBlockFactory implements BlockFactory {
    private static final long serialVersionUID = 1L;

    @Override
    public Block newBlock(Model model, Path modelPath, Map<String, ?> arguments) {
        return new LambdaBlock(list -> list, "mooncake4j-kv-identity");
    }
}
