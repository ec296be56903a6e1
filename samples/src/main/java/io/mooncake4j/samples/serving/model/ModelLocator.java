package io.mooncake4j.samples.serving.model;

import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.CodeSource;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Finds the default model files, stories260K.bin and tok512.bin, without downloading anything: the
 * folder named by {@code MOONCAKE4J_MODELS} (or {@code -Dmooncake4j.models}) when set, else a
 * {@code shared/models} folder next to the repository (the repository root is found from where
 * this code was loaded, i.e. {@code bin/mooncake4j}'s jars, then by walking up from the working
 * directory).
 */
public final class ModelLocator {
    /** Environment variable naming the models folder; wins over the search. */
    public static final String ENV = "MOONCAKE4J_MODELS";
    /** System property naming the models folder; wins over the environment variable. */
    public static final String PROPERTY = "mooncake4j.models";
    /** The default checkpoint's file name. */
    public static final String CHECKPOINT = "stories260K.bin";
    /** The default tokenizer's file name. */
    public static final String TOKENIZER = "tok512.bin";

    private ModelLocator() {}

    /** The models folder holding both default files, if any. */
    public static Optional<Path> find() {
        for (Path dir : candidates()) {
            if (Files.isRegularFile(dir.resolve(CHECKPOINT)) && Files.isRegularFile(dir.resolve(TOKENIZER))) {
                return Optional.of(dir.toAbsolutePath().normalize());
            }
        }
        return Optional.empty();
    }

    /** The folder holding the default tokenizer (even without the checkpoint), if any. */
    public static Optional<Path> findTokenizer() {
        for (Path dir : candidates()) {
            if (Files.isRegularFile(dir.resolve(TOKENIZER))) {
                return Optional.of(dir.resolve(TOKENIZER).toAbsolutePath().normalize());
            }
        }
        return Optional.empty();
    }

    /**
     * The folders searched, in order. When {@code MOONCAKE4J_MODELS} (or the property) is set it is
     * the only one, so that a user can also point it at an empty folder to force a random model.
     */
    public static List<Path> candidates() {
        String configured = System.getProperty(PROPERTY);
        if (configured == null || configured.isBlank()) {
            configured = System.getenv(ENV);
        }
        if (configured != null && !configured.isBlank()) {
            return List.of(Path.of(configured.trim()));
        }
        Set<Path> dirs = new LinkedHashSet<>();
        repositoryRoot().ifPresent(root -> addAround(root, dirs));
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            if (isRepositoryRoot(d)) {
                addAround(d, dirs);
            }
            dirs.add(d.resolve("shared").resolve("models"));
        }
        return new ArrayList<>(dirs);
    }

    private static void addAround(Path root, Set<Path> dirs) {
        Path parent = root.getParent();
        if (parent != null) {
            dirs.add(parent.resolve("shared").resolve("models"));
        }
        dirs.add(root.resolve("shared").resolve("models"));
    }

    /**
     * The repository this code runs from: {@code samples/target/<jar>} or {@code
     * samples/target/classes} three levels below it.
     */
    public static Optional<Path> repositoryRoot() {
        try {
            CodeSource cs = ModelLocator.class.getProtectionDomain().getCodeSource();
            if (cs == null || cs.getLocation() == null) {
                return Optional.empty();
            }
            Path p = Path.of(cs.getLocation().toURI()).toAbsolutePath();
            for (Path d = p; d != null; d = d.getParent()) {
                if (isRepositoryRoot(d)) {
                    return Optional.of(d);
                }
            }
        } catch (URISyntaxException | RuntimeException e) {
            // not loaded from a file: no repository to look around
        }
        return Optional.empty();
    }

    private static boolean isRepositoryRoot(Path d) {
        return Files.isRegularFile(d.resolve("bin").resolve("mooncake4j")) && Files.isDirectory(d.resolve("samples"));
    }
}
