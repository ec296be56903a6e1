package io.mooncake4j.nativeio;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Loads a JNI library: first from {@code java.library.path}, then from the jar at {@code
 * META-INF/native/<os>-<arch>/lib<name>.so}, extracted to a private temporary file. When every
 * attempt fails, the thrown error carries each attempt's failure as a suppressed exception.
 */
public final class NativeLibraryLoader {
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
            Path dir = Files.createTempDirectory("mooncake4j-native");
            Path file = dir.resolve("lib" + name + ".so");
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
            file.toFile().deleteOnExit();
            dir.toFile().deleteOnExit();
            System.load(file.toAbsolutePath().toString());
        } catch (IOException | UnsatisfiedLinkError e) {
            UnsatisfiedLinkError error =
                    new UnsatisfiedLinkError(
                            "could not load lib" + name + ".so bundled at " + resource + ": " + e);
            error.addSuppressed(fromPath);
            error.addSuppressed(e);
            throw error;
        }
    }
}
