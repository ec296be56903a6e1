package io.mooncake4j.nativeio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Extraction of the bundled library leaves nothing in the temp directory. */
@Timeout(120)
class NativeLibraryLoaderTest {
    private static final String JAVA = Path.of(System.getProperty("java.home"), "bin", "java").toString();

    @TempDir Path tmp;

    /** Loads the library from the jar resources in a child JVM, then exits or halts (as kill -9). */
    public static final class Child {
        public static void main(String[] args) {
            System.out.println("page size " + NativeMemory.pageSize());
            System.out.flush();
            if (args[0].equals("halt")) {
                Runtime.getRuntime().halt(0); // no shutdown hooks, no deleteOnExit: as kill -9
            }
        }
    }

    @Tag("integration")
    @ParameterizedTest
    @ValueSource(strings = {"exit", "halt"})
    void shouldLeaveNoFolderWhenAChildJvmLoadsTheBundledLibrary(String ending) throws Exception {
        Process p =
                new ProcessBuilder(
                                JAVA,
                                "--enable-native-access=ALL-UNNAMED",
                                "-Djava.io.tmpdir=" + tmp,
                                "-Djava.library.path=" + tmp.resolve("empty"),
                                "-cp",
                                System.getProperty("java.class.path"),
                                Child.class.getName(),
                                ending)
                        .redirectErrorStream(true)
                        .start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child JVM did not exit");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);

        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("page size " + NativeMemory.pageSize()), out);
        assertEquals(List.of(), list(tmp));
    }

    @Test
    void shouldDeleteTheFolderOfADeadProcessWhenStale() throws Exception {
        Path dead = folder(NativeLibraryLoader.FOLDER_PREFIX + deadPid() + "-123", Instant.now().minus(Duration.ofHours(1)));

        NativeLibraryLoader.deleteStaleFolders(tmp, Instant.now().minus(Duration.ofMinutes(1)));

        assertFalse(Files.exists(dead));
    }

    @Test
    void shouldKeepTheFolderOfALiveProcess() throws Exception {
        Path live = folder(
                NativeLibraryLoader.FOLDER_PREFIX + ProcessHandle.current().pid() + "-456",
                Instant.now().minus(Duration.ofHours(1)));

        NativeLibraryLoader.deleteStaleFolders(tmp, Instant.now().minus(Duration.ofMinutes(1)));

        assertTrue(Files.exists(live.resolve("libmooncake4j.so")));
    }

    @Test
    void shouldKeepARecentFolderOfADeadProcessWhenAnotherNamespaceMayBeLoadingIt() throws Exception {
        Path recent = folder(NativeLibraryLoader.FOLDER_PREFIX + deadPid() + "-789", Instant.now());

        NativeLibraryLoader.deleteStaleFolders(tmp, Instant.now().minus(Duration.ofMinutes(1)));

        assertTrue(Files.exists(recent.resolve("libmooncake4j.so")));
    }

    /** The pid of a process that has ended. */
    private static long deadPid() throws Exception {
        Process p = new ProcessBuilder(JAVA, "-version").start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        return p.pid();
    }

    private Path folder(String name, Instant modified) throws IOException {
        Path dir = Files.createDirectory(tmp.resolve(name));
        Files.write(dir.resolve("libmooncake4j.so"), new byte[] {0x7f, 'E', 'L', 'F'});
        Files.setLastModifiedTime(dir, FileTime.from(modified));
        return dir;
    }

    private static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
