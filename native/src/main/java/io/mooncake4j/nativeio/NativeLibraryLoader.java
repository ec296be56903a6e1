package io.mooncake4j.nativeio;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Loads a JNI library: first from {@code java.library.path}, then from the jar at {@code
 * META-INF/native/<os>-<arch>/lib<name>.so}, extracted to a private temporary folder that is
 * deleted right after loading (Linux keeps a loaded library mapped after unlink). Folders left by
 * processes that died between extracting and deleting are removed on the next load. When every
 * attempt fails, the thrown error carries each attempt's failure as a suppressed exception.
 */
public final class NativeLibraryLoader {
    /** Extraction folders are named {@code mooncake4j-native-<pid>-<random>}. */
    static final String FOLDER_PREFIX = "mooncake4j-native-";

    private static final Pattern FOLDER = Pattern.compile(Pattern.quote(FOLDER_PREFIX) + "(\\d+)-.*");
    /**
     * A dead process's folder younger than this is left alone: a process in another PID namespace
     * sharing this temp directory may be between extracting and loading.
     */
    private static final Duration STALE_AFTER = Duration.ofMinutes(1);

    private NativeLibraryLoader() {}

    /** The platform folder inside the jar, e.g. {@code linux-x86_64}. */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String osName = os.contains("linux") ? "linux" : os.replaceAll("[^a-z0-9]", "");
        String archName =
                switch (arch) {
                    case "amd64", "x86_64" -> "x86_64";
                    case "aarch64", "arm64" -> "aarch_64";
                    default -> arch;
                };
        return osName + "-" + archName;
    }

    /**
     * Loads {@code lib<name>.so} with the given class's classloader as the source of the bundled
     * copy.
     *
     * @throws UnsatisfiedLinkError naming every attempt, with their causes suppressed
     */
    public static void load(String name, Class<?> owner) {
        UnsatisfiedLinkError fromPath;
        try {
            System.loadLibrary(name);
            return;
        } catch (UnsatisfiedLinkError e) {
            fromPath = e;
        }
        String resource = "META-INF/native/" + platform() + "/lib" + name + ".so";
        try (InputStream in = owner.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                UnsatisfiedLinkError error =
                        new UnsatisfiedLinkError(
                                "lib"
                                        + name
                                        + ".so is neither on java.library.path nor bundled at "
                                        + resource
                                        + " for platform "
                                        + platform()
                                        + "; this build supports linux-x86_64");
                error.addSuppressed(fromPath);
                throw error;
            }
            Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
            deleteStaleFolders(tmp, Instant.now().minus(STALE_AFTER));
            Path dir = Files.createTempDirectory(tmp, FOLDER_PREFIX + ProcessHandle.current().pid() + "-");
            Path file = dir.resolve("lib" + name + ".so");
            try {
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                System.load(file.toAbsolutePath().toString());
            } finally {
                // The loaded library stays mapped after unlink, so nothing needs to outlive this call,
                // not even a JVM killed with -9.
                deleteFolder(dir);
            }
        } catch (IOException | UnsatisfiedLinkError e) {
            UnsatisfiedLinkError error =
                    new UnsatisfiedLinkError(
                            "could not load lib" + name + ".so bundled at " + resource + ": " + e);
            error.addSuppressed(fromPath);
            error.addSuppressed(e);
            throw error;
        }
    }

    /**
     * Deletes the extraction folders in {@code tmp} of processes that no longer run, last modified
     * before {@code notAfter}. Folders of live processes (and names without a pid) are kept.
     */
    static void deleteStaleFolders(Path tmp, Instant notAfter) {
        try (DirectoryStream<Path> folders = Files.newDirectoryStream(tmp, FOLDER_PREFIX + "*")) {
            for (Path folder : folders) {
                Matcher m = FOLDER.matcher(folder.getFileName().toString());
                if (m.matches()
                        && !isAlive(m.group(1))
                        && Files.getLastModifiedTime(folder).toInstant().isBefore(notAfter)) {
                    deleteFolder(folder);
                }
            }
        } catch (IOException | UncheckedIOException e) {
            // Best effort: a folder we cannot list or read is someone else's.
        }
    }

    private static boolean isAlive(String pid) {
        try {
            return ProcessHandle.of(Long.parseLong(pid)).map(ProcessHandle::isAlive).orElse(false);
        } catch (NumberFormatException e) {
            return true; // not a pid we could have written: not ours to delete
        }
    }

    /** Deletes a folder and the files in it (extraction folders hold no subfolders). */
    private static void deleteFolder(Path dir) {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
            for (Path f : files) {
                Files.deleteIfExists(f);
            }
            Files.deleteIfExists(dir);
        } catch (IOException | UncheckedIOException e) {
            // Best effort: another process deleted it first, or it is not ours.
        }
    }
}
