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

    private TargetProcessHandle(Process process, String segment, long address, long length) {
        this.process = process;
        this.segment = segment;
        this.address = address;
        this.length = length;
    }

    /** Starts a target with {@code bytes} of registered memory and waits until it serves. */
    public static TargetProcessHandle start(String protocol, long bytes) throws IOException {
        return start(protocol, bytes, List.of("-Xmx256m"));
    }

    /** As {@link #start(String, long)}, with these JVM options (heap size, {@code -Dmc.*} settings). */
    public static TargetProcessHandle start(String protocol, long bytes, List<String> jvmOptions) throws IOException {
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        List<String> command = new java.util.ArrayList<>();
        command.add(java);
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"),
                TargetProcess.class.getName(), protocol, Long.toString(bytes)));
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
        String[] f = line.split(" ");
        return new TargetProcessHandle(p, f[1], Long.parseLong(f[2]), Long.parseLong(f[3]));
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
