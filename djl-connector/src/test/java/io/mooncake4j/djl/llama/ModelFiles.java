package io.mooncake4j.djl.llama;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Finds the shared test models (stories260K.bin, tok512.bin): the system property {@code
 * mooncake4j.models} or the environment variable {@code MOONCAKE4J_MODELS}, else a {@code
 * shared/models} folder in the working directory or one of its ancestors (the repository's parent
 * holds it). Tests that need them are skipped when absent.
 */
final class ModelFiles {

    static final String CHECKPOINT = "stories260K.bin";
    static final String TOKENIZER = "tok512.bin";

    private ModelFiles() {}

    /** Returns the models folder, or {@code null} when not found. */
    static Path find() {
        String configured = System.getProperty("mooncake4j.models");
        if (configured == null || configured.isBlank()) {
            configured = System.getenv("MOONCAKE4J_MODELS");
        }
        if (configured != null && !configured.isBlank()) {
            Path dir = Path.of(configured);
            return Files.isRegularFile(dir.resolve(CHECKPOINT)) ? dir : null;
        }
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path dir = d.resolve("shared").resolve("models");
            if (Files.isRegularFile(dir.resolve(CHECKPOINT))
                    && Files.isRegularFile(dir.resolve(TOKENIZER))) {
                return dir;
            }
        }
        return null;
    }

    /** Returns the models folder, skipping the calling test when it is absent. */
    static Path require() {
        Path dir = find();
        assumeTrue(
                dir != null,
                "stories260K.bin and tok512.bin not found: set -Dmooncake4j.models or"
                        + " MOONCAKE4J_MODELS, or put them in a shared/models folder above the"
                        + " working directory");
        return dir;
    }
}
