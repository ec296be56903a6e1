package io.mooncake4j.testkit;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Starts a {@link TargetProcess} (or another target main) in a child JVM, talks to it, and kills it. */
public final class TargetProcessHandle implements AutoCloseable {
    public final Process process;
    public final String segment;
    public final long address;
    public final long length;
    /** Every field of the child's {@code READY} line (a child main may print more than the three above). */
    public final String[] ready;
    private final BufferedReader out;

    private TargetProcessHandle(Process process, BufferedReader out, String[] ready) {
        this.process = process;
        this.out = out;
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
     * Starts {@code main} (which prints {@code READY <segment> <address> <length> ...} first, then serves
     * until its standard input closes) in a child JVM with the test class path, and waits until it serves.
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
            line = readLine(out, 60);
        } catch (IOException e) {
            p.destroyForcibly();
            throw new IOException("target process did not start", e);
        }
        if (line == null || !line.startsWith("READY ")) {
            p.destroyForcibly();
            throw new IOException("target process printed " + line);
        }
        return new TargetProcessHandle(p, out, line.split(" "));
    }

    /** Sends one command line to the child and returns its one-line answer (within 30 s). */
    public String command(String line) throws IOException {
        process.getOutputStream().write((line + "\n").getBytes(StandardCharsets.UTF_8));
        process.getOutputStream().flush();
        String answer = readLine(out, 30);
        if (answer == null) {
            throw new IOException("the target process ended without answering '" + line + "'");
        }
        return answer;
    }

    private static String readLine(BufferedReader in, int seconds) throws IOException {
        try {
            return CompletableFuture.supplyAsync(() -> {
                try {
                    return in.readLine();
                } catch (IOException e) {
                    return null;
                }
            }).get(seconds, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IOException("no line from the target process within " + seconds + " s", e);
        }
    }

    /** Stops the process (SIGSTOP) and waits until every thread of it is stopped: a peer that never answers. */
    public void stop() throws IOException, InterruptedException {
        ProcessSignals.stop(process);
    }

    /** Resumes a {@linkplain #stop() stopped} process (SIGCONT). */
    public void resume() throws IOException, InterruptedException {
        ProcessSignals.resume(process);
    }

    /** Kills the process at once (SIGKILL). */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    @Override
    public void close() throws Exception {
        if (process.isAlive()) {
            resume(); // a stopped child would never see its input end
        }
        process.getOutputStream().close();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            kill();
        }
    }
}
