package io.mooncake4j.djl.connector;

import com.google.gson.JsonObject;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.kv.BlockRun;
import io.mooncake4j.djl.kv.BlockRuns;
import io.mooncake4j.djl.kv.KvPart;
import io.mooncake4j.djl.kv.PagedKvCache;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A connector's decode role: allocates blocks for a request's whole generation, tells the prefill
 * side where to write them (push) or reads them (pull), waits up to {@code MC_KV_WAIT_TIMEOUT},
 * and frees them on failure, at once or after the {@link Quarantine} when a peer may still write.
 */
final class DecodeSide {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeSide.class);

    private final ConnectorContext ctx;
    private final Quarantine quarantine;
    private final Map<String, DecodeRequest> requests = new ConcurrentHashMap<>();

    DecodeSide(ConnectorContext ctx) {
        this.ctx = ctx;
        this.quarantine = new Quarantine(ctx);
    }

    /** Waiting requests. */
    int active() {
        return requests.size();
    }

    Duration waitTimeout() {
        return ctx.config.waitTimeout();
    }

    /** See {@link KvConnector#expect(String, int, int, int[], Duration)}. */
    DecodeRequest expect(String requestId, int numTokens, int capacityTokens, int[] prefixBlocks, Duration wait) {
        DecodeRequest r = newRequest(requestId, numTokens, capacityTokens, prefixBlocks, TransferMode.PUSH, null,
                wait);
        r.assignDestination(destination(r));
        return r;
    }

    /** See {@link KvConnector#fetch(KvTransferParams, int, int[], Duration)}. */
    DecodeRequest fetch(KvTransferParams source, int capacityTokens, int[] prefixBlocks, Duration wait) {
        Objects.requireNonNull(source, "source");
        if (source.role() != KvTransferParams.Role.PREFILL) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + source.requestId()
                    + ": fetch needs the prefill worker's kv_transfer_params, got a decode destination");
        }
        if (!ctx.layout.isCompatible(source.layout())) {
            throw new KvException(KvError.LAYOUT_MISMATCH, "request " + source.requestId() + ": prefill layout "
                    + source.layout() + " differs from decode's " + ctx.layout);
        }
        if (source.startToken() != 0) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + source.requestId()
                    + ": a prefill source must cover the prompt from position 0");
        }
        Duration w = wait;
        if (source.expiresAtMillis() > 0) {
            // a pull must end before prefill may free and reuse its blocks
            long left = source.expiresAtMillis() - System.currentTimeMillis();
            long need = source.mode() == TransferMode.PULL ? ctx.engine.config().transferTimeout().toMillis() : 0;
            if (left <= need) {
                throw new KvException(KvError.EXPIRED, "request " + source.requestId() + ": the prefill result "
                        + (left <= 0 ? "expired " + -left + " ms ago" : "expires in " + left + " ms, before a pull could end")
                        + " (MC_KV_UNCLAIMED_TIMEOUT on the prefill side)");
            }
            Duration untilExpiry = Duration.ofMillis(left - need);
            w = w.compareTo(untilExpiry) <= 0 ? w : untilExpiry;
        }
        DecodeRequest r = newRequest(source.requestId(), source.numTokens(), capacityTokens, prefixBlocks,
                source.mode(), source, w);
        if (source.mode() == TransferMode.PUSH) {
            KvTransferParams dest = destination(r);
            r.assignDestination(dest);
            JsonObject body = new JsonObject();
            body.add("params", dest.toJson());
            String message = new KvMessage(KvMessage.Type.DEST, source.connector(), ctx.id, r.requestId(), body).encode();
            ctx.io().execute(() -> {
                try {
                    ctx.engine.sendNotification(source.engine(), message);
                } catch (RuntimeException e) {
                    ctx.counters.notificationsFailed.incrementAndGet();
                    fail(r, KvError.PEER_ERROR, "could not reach prefill worker " + source.engine() + ": "
                            + e.getMessage(), true);
                }
            });
        } else {
            ctx.io().execute(() -> pull(r));
        }
        return r;
    }

    private DecodeRequest newRequest(String requestId, int numTokens, int capacityTokens, int[] prefixBlocks,
            TransferMode mode, KvTransferParams source, Duration wait) {
        ctx.ensureOpen();
        if (requestId == null || requestId.isEmpty()) {
            throw new KvException(KvError.INVALID_PARAMS, "request id is empty");
        }
        if (numTokens <= 0) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + requestId + ": numTokens must be positive");
        }
        int[] prefix = prefixBlocks == null ? new int[0] : prefixBlocks;
        int bt = ctx.layout.blockTokens();
        int usedPrefix = Math.min(prefix.length, numTokens / bt);
        int capacity = Math.max(capacityTokens, numTokens);
        int fresh = ctx.layout.blocksFor(capacity) - usedPrefix;
        ctx.allocator.retain(prefix, 0, usedPrefix);
        int[] got;
        try {
            got = ctx.allocate(fresh, wait);
        } catch (RuntimeException e) {
            ctx.allocator.release(prefix, 0, usedPrefix);
            throw e;
        }
        int[] table = new int[usedPrefix + fresh];
        System.arraycopy(prefix, 0, table, 0, usedPrefix);
        System.arraycopy(got, 0, table, usedPrefix, fresh);
        PagedKvCache cache = ctx.cache(table);
        DecodeRequest r = new DecodeRequest(this, requestId, numTokens, usedPrefix * bt, table, cache, mode, source);
        if (requests.putIfAbsent(requestId, r) != null) {
            cache.close();
            ctx.allocator.release(table);
            throw new KvException(KvError.INVALID_PARAMS, "decode request " + requestId + " is already waiting");
        }
        r.armTimeout(ctx.schedule(() -> fail(r, KvError.TIMEOUT, "no KV cache within "
                + ctx.config.waitTimeout().toMillis() + " ms (MC_KV_WAIT_TIMEOUT)", true), ctx.config.waitTimeout()));
        return r;
    }

    /** The push destination for a request: its blocks from its first transferred position. */
    private KvTransferParams destination(DecodeRequest r) {
        int startBlock = r.startToken() / ctx.layout.blockTokens();
        int[] ids = Arrays.copyOfRange(r.blockTable(), startBlock, ctx.layout.blocksFor(r.numTokens()));
        long left = ctx.config.waitTimeout().toMillis()
                - TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - r.createdNanos());
        left = Math.max(1, left);
        return new KvTransferParams(r.requestId(), KvTransferParams.Role.DECODE, TransferMode.PUSH,
                ctx.engine.localSegmentName(), ctx.id, r.numTokens(), r.startToken(), ids, ctx.layout,
                ctx.transfers.bases(KvPart.KEY), ctx.transfers.bases(KvPart.VALUE), left,
                System.currentTimeMillis() + left, null);
    }

    /** Reads the request's blocks from the prefill worker; runs on an I/O thread. */
    private void pull(DecodeRequest r) {
        KvTransferParams s = r.source();
        try {
            int startBlock = r.startToken() / ctx.layout.blockTokens();
            int n = ctx.layout.blocksFor(r.numTokens()) - startBlock;
            int[] local = Arrays.copyOfRange(r.blockTable(), startBlock, startBlock + n);
            int[] remote = Arrays.copyOfRange(s.blockIds(), startBlock, startBlock + n);
            List<BlockRun> runs = BlockRuns.coalesce(local, remote);
            if (runs.isEmpty()) {
                pulled(r, stats(r, 0, 0, 0, 0, 0));
                return;
            }
            // a refused batch: the request failed or was closed meanwhile, nothing to do
            ctx.transfers.start(Opcode.READ, s, local, runs, r::attachBatch, moved -> {
                TransferBatch b = moved.batch();
                if (b.isAllCompleted()) {
                    ctx.counters.bytesReceived.addAndGet(moved.bytes());
                    pulled(r, stats(r, moved.blocks(), moved.runs(), b.size(), moved.bytes(), moved.transferNanos()));
                } else {
                    pullFailed(r, KvError.TRANSFER_FAILED, BlockTransfers.failure(b));
                }
            });
        } catch (RuntimeException e) {
            pullFailed(r, e instanceof KvException ? ((KvException) e).error() : KvError.TRANSFER_FAILED,
                    e.getMessage());
        }
    }

    private KvTransferStats stats(DecodeRequest r, int blocks, int runs, int requests, long bytes,
            long transferNanos) {
        return new KvTransferStats(r.requestId(), "decode", TransferMode.PULL, r.source().engine(), r.numTokens(),
                r.startToken(), blocks, runs, requests, bytes, transferNanos, System.nanoTime() - r.createdNanos());
    }

    /** The pull completed: release prefill's blocks (with the stats) and complete the request. */
    private void pulled(DecodeRequest r, KvTransferStats stats) {
        KvTransferParams s = r.source();
        ctx.notifyPeer(s.engine(), KvMessage.Type.RELEASE, s.connector(), r.requestId(),
                ConnectorContext.statsBody(stats));
        complete(r, stats);
    }

    /** The pull failed: release prefill's blocks (with why) and fail the request; nothing is in flight. */
    private void pullFailed(DecodeRequest r, KvError error, String reason) {
        KvTransferParams s = r.source();
        String why = "pull of request " + r.requestId() + " from " + s.engine() + " failed: " + reason;
        ctx.notifyPeer(s.engine(), KvMessage.Type.RELEASE, s.connector(), r.requestId(),
                ConnectorContext.reasonBody(why));
        fail(r, error, why, false);
    }

    private void complete(DecodeRequest r, KvTransferStats stats) {
        if (!r.markReady()) {
            return;
        }
        requests.remove(r.requestId(), r);
        ctx.counters.decodeCompleted.incrementAndGet();
        r.settle(stats, null);
    }

    /**
     * Fails a waiting request and frees its blocks: at once when no transfer can still touch them,
     * else after the quarantine (or when the peer's final word arrives).
     */
    void fail(DecodeRequest r, KvError error, String why, boolean mayBeInFlight) {
        if (!r.markFailed()) {
            return;
        }
        requests.remove(r.requestId(), r);
        ctx.counters.decodeFailed.incrementAndGet();
        KvTransferParams s = r.source();
        if (mayBeInFlight && s != null && r.mode() == TransferMode.PUSH) {
            ctx.notifyPeer(s.engine(), KvMessage.Type.ABORT, s.connector(), r.requestId(),
                    ConnectorContext.reasonBody(why));
        }
        r.cache().close();
        if (mayBeInFlight) {
            quarantine.hold(r.requestId(), s == null ? null : s.engine(), r.blockTable());
        } else {
            ctx.allocator.release(r.blockTable());
        }
        LOG.debug("decode request {} failed: {}", r.requestId(), why);
        r.settle(null, new KvException(error, "request " + r.requestId() + ": " + why));
    }

    /**
     * Ends a request: a ready one frees its blocks; a waiting one fails, its blocks freed at once
     * when no peer can be writing into them ({@code delivered} false and a destination the
     * application carried itself), else after the quarantine.
     */
    void cancel(DecodeRequest r, boolean delivered) {
        switch (r.markCancelled()) {
            case FREE_BLOCKS:
                r.cache().close();
                ctx.allocator.release(r.blockTable());
                break;
            case FAIL_WAITING: {
                // a fetch's destination (push) or read (pull) went out from this connector itself
                boolean mayBeInFlight = delivered || r.source() != null;
                fail(r, KvError.ABORTED, mayBeInFlight ? "closed while waiting for its KV cache"
                        : "cancelled before its destination reached a prefill worker", mayBeInFlight);
                break;
            }
            default:
                break;
        }
    }

    // ------------------------------------------------------------------ messages

    /**
     * The live request a DONE or ERROR is about, when its prefill sent it; null otherwise (a message
     * about a quarantined request ends its quarantine; one from another sender is refused).
     */
    private DecodeRequest fromItsSource(String sender, KvMessage m) {
        DecodeRequest r = requests.get(m.requestId);
        if (r == null) {
            quarantine.end(m.requestId, sender, m);
            return null;
        }
        return fromSource(r, sender, m) ? r : null;
    }

    /** The prefill side pushed the KV cache. */
    void onDone(String sender, KvMessage m) {
        DecodeRequest r = fromItsSource(sender, m);
        if (r == null) {
            return;
        }
        complete(r, KvTransferStats.reportedBy(sender, m.body.get("stats"),
                KvTransferStats.unreported(r.requestId(), r.mode(), r.numTokens(), r.startToken()),
                "decode", System.nanoTime() - r.createdNanos()));
    }

    /** The prefill side reports that no KV cache is coming. */
    void onError(String sender, KvMessage m) {
        DecodeRequest r = fromItsSource(sender, m);
        if (r == null) {
            return;
        }
        fail(r, KvError.PEER_ERROR, "prefill worker " + sender + " reported: " + m.reason(), false);
    }

    /**
     * Whether a DONE or ERROR for {@code r} comes from the prefill engine its fetch asked. A request
     * made with {@code expect} asked no one (the application carried its destination), so any peer
     * that reaches this engine may end it; docs/security.md says so.
     */
    private boolean fromSource(DecodeRequest r, String sender, KvMessage m) {
        KvTransferParams s = r.source();
        return s == null || ctx.senders.accepts(sender, s.engine(), m);
    }

    /** Fails every waiting request (telling peers) and ends the quarantine (the connector closes). */
    void closeAll() {
        for (DecodeRequest r : new ArrayList<>(requests.values())) {
            fail(r, KvError.CLOSED, "the decode connector closed", true);
        }
        quarantine.endAll();
    }
}
