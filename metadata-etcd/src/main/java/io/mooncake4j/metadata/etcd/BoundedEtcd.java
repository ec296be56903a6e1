package io.mooncake4j.metadata.etcd;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.Watch;
import io.etcd.jetcd.common.exception.EtcdException;
import io.etcd.jetcd.kv.GetResponse;
import io.etcd.jetcd.op.Op;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.PutOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.watch.WatchResponse;
import io.grpc.Status;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The few etcd operations the store needs, each bounded by a timeout: a call that etcd does not
 * answer in time is cancelled and fails with {@code METADATA}, never hangs.
 */
final class BoundedEtcd implements AutoCloseable {
    /** A key's value (null when absent) and the store's revision when it was read. */
    record Read(String value, long revision) {}

    private final Client client;
    private final Duration timeout;
    private final String endpoints;

    BoundedEtcd(List<URI> endpoints, Duration timeout) {
        this.timeout = timeout;
        this.endpoints = endpoints.toString();
        this.client = Client.builder()
                .endpoints(endpoints.toArray(new URI[0]))
                .connectTimeout(timeout)
                .retryMaxDuration(timeout)
                .waitForReady(false) // fail at once while no endpoint is reachable, rather than queue
                .build();
    }

    Duration timeout() {
        return timeout;
    }

    Read get(String key, Duration bound) {
        GetResponse r = await(() -> client.getKVClient().get(bytes(key), GetOption.DEFAULT), bound, "reading " + key);
        List<KeyValue> kvs = r.getKvs();
        String value = kvs.isEmpty() ? null : kvs.get(0).getValue().toString(StandardCharsets.UTF_8);
        return new Read(value, r.getHeader().getRevision());
    }

    /** Puts every {@code key, value} pair, bound to {@code lease}, in one transaction. */
    void putAll(long lease, String... keysAndValues) {
        PutOption option = PutOption.builder().withLeaseId(lease).build();
        Op[] puts = new Op[keysAndValues.length / 2];
        for (int i = 0; i < puts.length; i++) {
            puts[i] = Op.put(bytes(keysAndValues[2 * i]), bytes(keysAndValues[2 * i + 1]), option);
        }
        await(() -> client.getKVClient().txn().Then(puts).commit(), timeout, "writing " + keysAndValues[0] + " and "
                + (puts.length - 1) + " more");
    }

    long grant(long ttlSeconds) {
        return await(() -> client.getLeaseClient().grant(ttlSeconds), timeout, "granting a lease").getID();
    }

    /** Renews the lease once; false when etcd no longer has it (it expired, or etcd lost its data). */
    boolean keepAlive(long lease) {
        try {
            await(() -> client.getLeaseClient().keepAliveOnce(lease), timeout, "renewing lease " + Long.toHexString(lease));
            return true;
        } catch (MooncakeException e) {
            if (isLeaseNotFound(e)) {
                return false;
            }
            throw e;
        }
    }

    void revoke(long lease) {
        await(() -> client.getLeaseClient().revoke(lease), timeout, "revoking lease " + Long.toHexString(lease));
    }

    /** Watches one key from {@code fromRevision}; jetcd resumes it by itself when the connection drops. */
    Watch.Watcher watch(String key, long fromRevision, Consumer<WatchResponse> onEvents, Consumer<Throwable> onError) {
        WatchOption option = WatchOption.builder().withRevision(fromRevision).build();
        return client.getWatchClient().watch(bytes(key), option, Watch.listener(onEvents, onError));
    }

    /** Whether a failure says that the lease is gone. */
    static boolean isLeaseNotFound(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof EtcdException
                    && ((EtcdException) c).getErrorCode() == io.etcd.jetcd.common.exception.ErrorCode.NOT_FOUND) {
                return true;
            }
            if (Status.fromThrowable(c).getCode() == Status.Code.NOT_FOUND) {
                return true;
            }
            String m = c.getMessage();
            if (m != null && m.toLowerCase(Locale.ROOT).contains("lease not found")) {
                return true;
            }
        }
        return false;
    }

    /**
     * Runs one call, retried while etcd answers UNAVAILABLE (a restarted member, or gRPC still in
     * reconnect back-off), until {@code bound} has passed: a call never outlives its bound, and a
     * brief outage shorter than it costs the caller nothing.
     */
    private <T> T await(Supplier<CompletableFuture<T>> call, Duration bound, String what) {
        long deadline = System.nanoTime() + bound.toNanos();
        long pauseMillis = 20;
        while (true) {
            try {
                return awaitOnce(call.get(), Math.max(0, deadline - System.nanoTime()), bound, what);
            } catch (MooncakeException e) {
                long left = deadline - System.nanoTime();
                if (!isUnavailable(e) || left <= TimeUnit.MILLISECONDS.toNanos(pauseMillis)) {
                    throw e;
                }
                try {
                    Thread.sleep(pauseMillis);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw e;
                }
                pauseMillis = Math.min(pauseMillis * 2, 500);
            }
        }
    }

    private static boolean isUnavailable(Throwable t) {
        for (Throwable c = t.getCause(); c != null; c = c.getCause()) {
            if (Status.fromThrowable(c).getCode() == Status.Code.UNAVAILABLE) {
                return true;
            }
        }
        return false;
    }

    private <T> T awaitOnce(CompletableFuture<T> f, long leftNanos, Duration bound, String what) {
        try {
            return f.get(leftNanos, TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            f.cancel(true);
            throw new MooncakeException(ErrorCode.METADATA, "etcd " + endpoints + " did not answer " + what + " within "
                    + bound.toMillis() + " ms (" + EtcdSettings.TIMEOUT + "): check that etcd runs and is reachable", e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            throw new MooncakeException(ErrorCode.METADATA, "etcd " + endpoints + " failed " + what + ": " + cause
                    + " (check that etcd runs and MC_METADATA_SERVER names it)", cause);
        } catch (InterruptedException e) {
            f.cancel(true);
            Thread.currentThread().interrupt();
            throw new MooncakeException(ErrorCode.METADATA, "interrupted while " + what + " in etcd " + endpoints, e);
        }
    }

    private static ByteSequence bytes(String s) {
        return ByteSequence.from(s, StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
        client.close();
    }

    @Override
    public String toString() {
        return "etcd " + endpoints;
    }
}
