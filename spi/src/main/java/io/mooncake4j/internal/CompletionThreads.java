package io.mooncake4j.internal;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The engine's threads that complete {@code TransferBatch.completion()} futures, so that stages a
 * user chains on them never run on a transport's I/O or completion-queue thread, and that run the
 * transports' aborts of timed-out work, so that the deadline thread never calls into a transport:
 * daemon threads named {@code mooncake4j-completion-N}, created on demand and ended after a minute
 * idle, so that a stage or an abort that blocks delays nothing else.
 */
public final class CompletionThreads implements AutoCloseable {
    private final AtomicInteger count = new AtomicInteger();
    private final ExecutorService executor =
            new ThreadPoolExecutor(0, Integer.MAX_VALUE, 60, TimeUnit.SECONDS, new SynchronousQueue<>(), r -> {
                Thread t = new Thread(r, "mooncake4j-completion-" + count.incrementAndGet());
                t.setDaemon(true);
                return t;
            });

    /** Completes {@code f} with {@code value} on a completion thread. */
    public <T> void complete(CompletableFuture<T> f, T value) {
        execute(() -> f.complete(value));
    }

    /** Runs {@code task} on a completion thread (on the common pool once closed). */
    public void execute(Runnable task) {
        try {
            executor.execute(task);
        } catch (RejectedExecutionException e) {
            ForkJoinPool.commonPool().execute(task); // the engine closed meanwhile
        }
    }

    /** Lets the threads end once idle; later completions run on the common pool. Idempotent. */
    @Override
    public void close() {
        executor.shutdown();
    }
}
