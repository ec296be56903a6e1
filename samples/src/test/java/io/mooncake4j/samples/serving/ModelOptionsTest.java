package io.mooncake4j.samples.serving;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.samples.serving.model.ModelLocator;
import io.mooncake4j.samples.serving.model.ModelSpec;
import io.mooncake4j.samples.serving.model.RandomModelSpec;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class ModelOptionsTest {
    @TempDir Path empty;
    private final String saved = System.getProperty(ModelLocator.PROPERTY);

    @AfterEach
    void restore() {
        if (saved == null) {
            System.clearProperty(ModelLocator.PROPERTY);
        } else {
            System.setProperty(ModelLocator.PROPERTY, saved);
        }
    }

    private static ModelSpec resolve(String... args) {
        GenerateCommand cmd = new GenerateCommand();
        new CommandLine(cmd).parseArgs(args);
        return cmd.modelOptions.resolve();
    }

    @Test
    void shouldFallBackToARandomModelWhenNoCheckpointIsFound() {
        System.setProperty(ModelLocator.PROPERTY, empty.toString());
        ModelSpec s = resolve();
        assertTrue(s.isRandom());
        assertEquals(RandomModelSpec.parse(RandomModelSpec.DEFAULT), s.random());
        assertNull(s.tokenizer(), "no tok512.bin either: the byte-level tokenizer");
        assertTrue(s.describe().contains("RANDOM"), s.describe());
        assertTrue(s.origin().contains(empty.toString()), s.origin());
    }

    @Test
    void shouldTakeStories260KFromTheSharedModelsFolderByDefault() {
        ModelSpec expected = TestModels.stories();
        ModelSpec s = resolve();
        assertEquals(expected.checkpoint(), s.checkpoint());
        assertEquals(expected.tokenizer(), s.tokenizer());
        assertEquals("stories260K", s.name());
    }

    @Test
    void shouldHandTheSameModelToAnotherProcess() {
        System.setProperty(ModelLocator.PROPERTY, empty.toString());
        ModelSpec random = resolve("--random_model", "4,2,16,4", "--model_seed", "9", "--tokenizer", "bytes");
        ModelSpec again = resolve(random.asArguments().toArray(new String[0]));
        assertEquals(random.random(), again.random());
        assertEquals(9, again.seed());
        assertNull(again.tokenizer());
        List<String> args = random.asArguments();
        assertTrue(args.contains("--tokenizer=bytes"), args.toString());
    }

    @Test
    void shouldRefuseContradictoryOrMissingFilesAsUsageErrors() {
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> resolve("--model", "x.bin", "--random_model", "2,2,16"));
        assertEquals(ErrorCode.CONFIGURATION, e.code());
        e = assertThrows(MooncakeException.class, () -> resolve("--model", empty.resolve("none.bin").toString()));
        assertEquals(ErrorCode.CONFIGURATION, e.code());
    }
}
