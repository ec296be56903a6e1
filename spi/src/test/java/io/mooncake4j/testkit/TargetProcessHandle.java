package io.mooncake4j.testkit;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Starts and kills a {@link TargetProcess} child JVM. */
public final class TargetProcessHandle implements AutoCloseable {
    public final Process process;
    public final String segment;
    public final long address;
    public final long length;
    /** Every field of the child's {@code READY} line (a child main may print more than the three above). */
    public final String[] ready;

    private TargetProcessHandle(Process process, String[] ready) {
        this.process = process;
        this.ready = ready;
        this.segment = ready[1];
        this.address = Long.parseLong(ready[2]);
        this.length = Long.parseLong(ready[3]);
    }

    /** Starts a target with {@code bytes} of registered memory and waits until it serves. */
    public static TargetProcessHandle start(String protocol, long bytes) throws IOException {
        return start(protocol, bytes, List.of("-Xmx256m"));
    }

    /** As {@link #start(String, long)}, with these JVM options (heap size, {@code -Dmc.*} settings). */
    public static TargetProcessHandle start(String protocol, long bytes, List<String> jvmOptions) throws IOException {
        return start(TargetProcess.class, List.of(protocol, Long.toString(bytes)), jvmOptions);
    }

    /**
     * Starts {@code main} (which prints {@code READY <segment> <address> <length> ...} and serves
     * until its standard input closes) with {@code args} on this JVM's class path.
     */
    public static TargetProcessHandle start(Class<?> main, List<String> args, List<String> jvmOptions) throws IOException {
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        List<String> command = new java.util.ArrayList<>();
        command.add(java);
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), main.getName()));
        command.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.redirectError(ProcessBuilder.Redirect.INHERIT);
        Process p = pb.start();
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line;
        try {
            line = CompletableFuture.supplyAsync(() -> {
                try {
                    return out.readLine();
                } catch (IOException e) {
                    return null;
                }
            }).get(60, TimeUnit.SECONDS);
        } catch (Exception e) {
            p.destroyForcibly();
            throw new IOException("target process did not start", e);
        }
        if (line == null || !line.startsWith("READY ")) {
            p.destroyForcibly();
            throw new IOException("target process printed " + line);
        }
        return new TargetProcessHandle(p, line.split(" "));
    }

    /** Kills the process at once (SIGKILL). */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    @Override
    public void close() throws Exception {
        process.getOutputStream().close();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            kill();
        }
    }
}
