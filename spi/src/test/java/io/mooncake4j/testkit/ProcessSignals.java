package io.mooncake4j.testkit;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Stops and resumes a child process (SIGSTOP, SIGCONT): a peer that accepts connections but never
 * answers. {@link #stop} returns only once every thread of the process is stopped, so whatever
 * completes afterwards is the caller's doing, not the peer's.
 */
public final class ProcessSignals {
    private ProcessSignals() {}

    /** SIGSTOP, then waits (at most 10 s) until every thread under {@code /proc/<pid>/task} is stopped. */
    public static void stop(Process process) throws IOException, InterruptedException {
        signal(process, "STOP");
        Path tasks = Path.of("/proc", Long.toString(process.pid()), "task");
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!allStopped(tasks)) {
            if (System.nanoTime() > end) {
                throw new IllegalStateException("pid " + process.pid() + " not stopped 10 s after SIGSTOP");
            }
            TimeUnit.MILLISECONDS.sleep(5);
        }
    }

    /** SIGCONT. */
    public static void resume(Process process) throws IOException, InterruptedException {
        signal(process, "CONT");
    }

    /** Whether every thread under {@code /proc/<pid>/task} is in state T (stopped). */
    private static boolean allStopped(Path tasks) throws IOException {
        try (Stream<Path> threads = Files.list(tasks)) {
            for (Path t : (Iterable<Path>) threads::iterator) {
                String stat;
                try {
                    stat = Files.readString(t.resolve("stat"));
                } catch (NoSuchFileException e) {
                    continue; // the thread ended
                }
                // "pid (comm) S ...": the state follows the last ')' (comm may hold spaces or parentheses)
                if (stat.charAt(stat.lastIndexOf(')') + 2) != 'T') {
                    return false;
                }
            }
        }
        return true;
    }

    private static void signal(Process process, String name) throws IOException, InterruptedException {
        Process k = new ProcessBuilder("kill", "-" + name, Long.toString(process.pid())).inheritIO().start();
        if (!k.waitFor(10, TimeUnit.SECONDS) || k.exitValue() != 0) {
            throw new IllegalStateException("kill -" + name + " " + process.pid() + " failed");
        }
    }
}
