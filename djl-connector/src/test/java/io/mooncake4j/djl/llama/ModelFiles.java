package io.mooncake4j.djl.llama;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Finds the shared test models (stories260K.bin, tok512.bin): the system property {@code
 * mooncake4j.models} or the environment variable {@code MOONCAKE4J_MODELS}, else a {@code
 * shared/models} folder in the working directory or one of its ancestors (the repository's parent
 * holds it). Tests that need them fail when they are absent in CI (the environment variable {@code
 * CI} set, or {@code -Dmooncake4j.models.required=true}), and are skipped elsewhere.
 */
final class ModelFiles {

    static final String CHECKPOINT = "stories260K.bin";
    static final String TOKENIZER = "tok512.bin";
    /** The system property that makes missing models a failure rather than a skip. */
    static final String REQUIRED = "mooncake4j.models.required";

    private ModelFiles() {}

    /** Returns the models folder, or {@code null} when not found. */
    static Path find() {
        String configured = configured();
        if (configured != null) {
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

    private static String configured() {
        String configured = System.getProperty("mooncake4j.models");
        if (configured == null || configured.isBlank()) {
            configured = System.getenv("MOONCAKE4J_MODELS");
        }
        return configured == null || configured.isBlank() ? null : configured;
    }

    /**
     * Returns the models folder. When it is absent the calling test fails in CI and is skipped
     * elsewhere, with a message saying where the files are expected.
     */
    static Path require() {
        Path dir = find();
        if (dir == null) {
            String configured = configured();
            String where = configured != null
                    ? configured + " (set by -Dmooncake4j.models or MOONCAKE4J_MODELS)"
                    : "a shared/models folder in " + Path.of("").toAbsolutePath()
                            + " or one of its ancestors (normally ../shared/models next to the repository),"
                            + " or a folder named by -Dmooncake4j.models or MOONCAKE4J_MODELS";
            String message = CHECKPOINT + " and " + TOKENIZER + " not found; expected in " + where;
            if (required()) {
                fail(message + ". They are required in CI (" + REQUIRED + " or the CI environment variable)");
            }
            assumeTrue(false, message);
        }
        return dir;
    }

    /** Whether missing models fail the tests: in CI, or when {@value #REQUIRED} is true. */
    static boolean required() {
        if (Boolean.parseBoolean(System.getProperty(REQUIRED))) {
            return true;
        }
        String ci = System.getenv("CI");
        return ci != null && !ci.isBlank() && !ci.trim().toLowerCase(Locale.ROOT).matches("false|0|no");
    }
}
