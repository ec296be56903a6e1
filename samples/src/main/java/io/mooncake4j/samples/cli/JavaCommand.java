package io.mooncake4j.samples.cli;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** How to start another JVM like this one: the tools' child processes (targets, workers). */
public final class JavaCommand {
    /** System properties handed to children: engine, connector, logging and DJL settings. */
    private static final String[] PROPAGATED = {"mc.", "mooncake.", "mooncake4j.", "org.slf4j.simpleLogger.", "ai.djl."};

    private JavaCommand() {}

    /**
     * {@code java [jvm options] [-Dsettings] -cp <class path>}, as this JVM was started: the same java,
     * native access, stack and heap options, and the engine's system properties.
     */
    public static List<String> current() {
        String java = ProcessHandle.current().info().command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> cmd = new ArrayList<>();
        cmd.add(java);
        boolean gc = false;
        try {
            for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
                if (a.startsWith("--enable-native-access") || a.startsWith("-Xss") || a.startsWith("-Xmx")) {
                    cmd.add(a);
                }
                gc |= a.startsWith("-XX:+Use") && a.endsWith("GC");
            }
        } catch (RuntimeException | LinkageError e) {
            // no management module: the defaults will do
        }
        if (!gc) {
            cmd.add("-XX:+UseSerialGC"); // small heaps, few cores: no parallel GC threads
        }
        for (String key : System.getProperties().stringPropertyNames()) {
            for (String prefix : PROPAGATED) {
                if (key.startsWith(prefix)) {
                    cmd.add("-D" + key + "=" + System.getProperty(key));
                    break;
                }
            }
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        return cmd;
    }
}
