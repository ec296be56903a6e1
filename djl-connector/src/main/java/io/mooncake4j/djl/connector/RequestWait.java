package io.mooncake4j.djl.connector;

import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.time.Duration;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Completing and waiting for a request's future, with failures as {@link KvException}s. */
final class RequestWait {
    private RequestWait() {}

    /** Completes {@code f} with the stats, or exceptionally with {@code error} when not null. */
    static void settle(CompletableFuture<KvTransferStats> f, KvTransferStats stats, KvException error) {
        if (error == null) {
            f.complete(stats);
        } else {
            f.completeExceptionally(error);
        }
    }

    /**
     * Waits for {@code f}.
     *
     * @throws KvException the request's failure, TIMEOUT when the wait ran out, ABORTED when
     *     cancelled or interrupted
     */
    static KvTransferStats await(CompletableFuture<KvTransferStats> f, Duration timeout, String requestId) {
        try {
            return f.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof KvException) {
                KvException k = (KvException) c;
                throw new KvException(k.error(), k.detail(), k);
            }
            throw new KvException(KvError.TRANSFER_FAILED, "request " + requestId + " failed: " + c, c);
        } catch (TimeoutException e) {
            throw new KvException(KvError.TIMEOUT, "request " + requestId + ": no result within "
                    + timeout.toMillis() + " ms");
        } catch (CancellationException e) {
            throw new KvException(KvError.ABORTED, "request " + requestId + " was cancelled");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new KvException(KvError.ABORTED, "interrupted while waiting for request " + requestId);
        }
    }
}
