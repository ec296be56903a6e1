package io.mooncake4j.samples.bench;

import io.mooncake4j.TransferEngine;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.cli.StdinWatch;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * {@code bench --mode=target}: registers its buffers (host memory, or GPU memory with {@code
 * --use_vram}; {@link BenchMemory}), prints its segment name (what the initiator
 * passes as {@code --segment_id}), optionally writes it to {@code --segment_file}, and serves until
 * it is killed (SIGINT/SIGTERM), {@code --target_duration} passes, or, with {@code
 * --exit_on_stdin_close}, its standard input reaches end of file (so a target spawned by a process
 * that dies goes away with it).
 */
final class TargetRunner {
    private final TransferEngine engine;
    private final BenchMemory memory;
    private final Path segmentFile;
    private final AtomicBoolean stopped = new AtomicBoolean();
    private final CountDownLatch stop = new CountDownLatch(1);

    private TargetRunner(TransferEngine engine, BenchMemory memory, Path segmentFile) {
        this.engine = engine;
        this.memory = memory;
        this.segmentFile = segmentFile;
    }

    /** Serves {@code memory}, allocated (and filled, with {@code --init_mem}) by the caller; closes both at the end. */
    static int run(TransferEngine engine, BenchMemory memory, Path segmentFile, double seconds,
            boolean exitOnStdinClose, PrintWriter out, PrintWriter err) {
        TargetRunner target = new TargetRunner(engine, memory, segmentFile);
        Thread hook = new Thread(() -> target.shutdown(err, "signal"), "bench-target-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            String name = engine.localSegmentName();
            if (segmentFile != null) {
                writeAtomically(segmentFile, name + "\n");
            }
            out.println("Target ready: segment_id " + name + ", protocol " + engine.protocol() + ", buffer "
                    + memory.describe() + " at 0x" + Long.toHexString(memory.addresses()[0]));
            out.println("Run the initiator with --segment_id=" + name + " --protocol=" + engine.protocol()
                    + "; stop this target with Ctrl-C or kill"
                    + (seconds > 0 ? " (it stops by itself after " + BenchReport.fixed(seconds, 1) + " s)" : "")
                    + ".");
            out.flush();
            if (exitOnStdinClose) {
                target.watchStdin(System.in);
            }
            boolean interrupted = false;
            try {
                if (seconds > 0) {
                    target.stop.await((long) (seconds * 1e9), TimeUnit.NANOSECONDS);
                } else {
                    target.stop.await();
                }
            } catch (InterruptedException e) {
                interrupted = true;
            }
            target.shutdown(err, interrupted ? "interrupted" : seconds > 0 ? "--target_duration passed" : "stdin closed");
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            return Main.OK;
        } finally {
            target.shutdown(err, null);
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // the JVM is already shutting down: the hook runs (or ran) anyway
            }
        }
    }

    private void watchStdin(InputStream in) {
        StdinWatch.onClose(in, stop::countDown);
    }

    /** Removes the segment file and closes the engine and the buffer, once. */
    private void shutdown(PrintWriter err, String why) {
        stop.countDown();
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        if (why != null) {
            err.println("Target " + engine.localSegmentName() + " stopping (" + why + ")");
            err.flush();
        }
        if (segmentFile != null) {
            try {
                Files.deleteIfExists(segmentFile);
            } catch (IOException e) {
                // best effort: a stale file names a closed port, which the initiator reports clearly
            }
        }
        engine.close();
        memory.close();
    }

    /** Writes {@code text} so that a reader never sees a partial file. */
    static void writeAtomically(Path file, String text) {
        try {
            Path dir = file.toAbsolutePath().getParent();
            if (dir != null) {
                Files.createDirectories(dir);
            }
            Path tmp = Files.createTempFile(dir, file.getFileName().toString(), ".tmp");
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new CommandFailure("cannot write --segment_file=" + file + ": " + e, e);
        }
    }
}
