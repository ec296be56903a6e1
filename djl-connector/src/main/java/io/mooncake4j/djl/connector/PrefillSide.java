package io.mooncake4j.djl.connector;

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
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A connector's prefill role: allocates blocks for the model to fill, pushes them to the decode
 * side's destination (given at start, or received in a {@code dest} message) or keeps them for
 * the decode side to read, and frees them when the request ends. Also keeps destinations that
 * arrive before their request starts, and expires results nobody claims.
 */
final class PrefillSide {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillSide.class);
    /** A push does not start this close to its destination's expiry. */
    private static final long PUSH_START_MARGIN_NANOS = TimeUnit.MILLISECONDS.toNanos(500);

    private final ConnectorContext ctx;
    private final Map<String, PrefillRequest> requests = new ConcurrentHashMap<>();
    private final Map<String, PendingDestination> pendingDestinations = new ConcurrentHashMap<>();
    /** Request ids that ended recently, so a late destination hears so at once. */
    private final Map<String, Long> recentlyEnded = new ConcurrentHashMap<>();

    private record PendingDestination(KvTransferParams params, long receivedNanos) {}

    PrefillSide(ConnectorContext ctx) {
        this.ctx = ctx;
    }

    /** Live requests. */
    int active() {
        return requests.size();
    }

    /** See {@link KvConnector#startPrefill(String, int, KvTransferParams, Duration)}. */
    PrefillRequest start(String requestId, int numTokens, KvTransferParams destination, Duration wait) {
        long received = System.nanoTime();
        try {
            ctx.ensureOpen();
            if (requestId == null || requestId.isEmpty()) {
                throw new KvException(KvError.INVALID_PARAMS, "request id is empty");
            }
            if (numTokens <= 0) {
                throw new KvException(KvError.INVALID_PARAMS, "request " + requestId + ": numTokens must be positive");
            }
            if (destination != null) {
                checkDestination(destination, requestId, numTokens);
            }
        } catch (KvException e) {
            if (destination != null) {
                refuse(destination, destination.requestId(), e.getMessage());
            }
            throw e;
        }
        long deadline = destination == null ? Long.MAX_VALUE : deadline(received, destination);
        int[] blocks;
        try {
            Duration w = wait;
            if (deadline != Long.MAX_VALUE) {
                w = min(w, Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
            }
            blocks = ctx.allocate(ctx.layout.blocksFor(numTokens), w);
        } catch (KvException e) {
            if (destination != null) {
                refuse(destination, requestId, "prefill worker got no KV blocks: " + e.getMessage());
            }
            throw e;
        }
        PagedKvCache cache = ctx.cache(blocks);
        PrefillRequest r = new PrefillRequest(this, requestId, numTokens, blocks, cache, destination, deadline);
        recentlyEnded.remove(requestId);
        if (requests.putIfAbsent(requestId, r) != null) {
            cache.close();
            ctx.allocator.release(blocks);
            throw new KvException(KvError.INVALID_PARAMS, "prefill request " + requestId + " is already in progress");
        }
        PendingDestination pending = pendingDestinations.remove(requestId);
        if (destination == null && pending != null) {
            offer(r, pending.params(), pending.receivedNanos());
        }
        return r;
    }

    private static Duration min(Duration a, Duration b) {
        return a.compareTo(b) <= 0 ? a : b;
    }

    /**
     * When a push into a destination must not start any more: the earlier of its relative expiry
     * counted from {@code receivedNanos} and its absolute wall-clock expiry (which also covers the
     * time the request spent queued before it reached this worker), less a margin. Long.MAX_VALUE
     * when it has neither.
     */
    private static long deadline(long receivedNanos, KvTransferParams d) {
        long deadline = Long.MAX_VALUE;
        if (d.expiresInMillis() > 0) {
            deadline = receivedNanos + TimeUnit.MILLISECONDS.toNanos(d.expiresInMillis());
        }
        if (d.expiresAtMillis() > 0) {
            long left = d.expiresAtMillis() - System.currentTimeMillis();
            long byClock = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(left);
            deadline = deadline == Long.MAX_VALUE ? byClock : Math.min(deadline, byClock);
        }
        return deadline == Long.MAX_VALUE ? deadline : deadline - PUSH_START_MARGIN_NANOS;
    }

    private void checkDestination(KvTransferParams d, String requestId, int numTokens) {
        if (d.role() != KvTransferParams.Role.DECODE) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + requestId
                    + ": kv_transfer_params come from a prefill worker, not a decode destination");
        }
        if (d.mode() != TransferMode.PUSH) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + requestId + ": a destination must be push mode");
        }
        if (!d.requestId().equals(requestId)) {
            throw new KvException(KvError.INVALID_PARAMS, "destination is for request " + d.requestId()
                    + ", not " + requestId);
        }
        if (!ctx.layout.isCompatible(d.layout())) {
            throw new KvException(KvError.LAYOUT_MISMATCH, "request " + requestId + ": decode layout " + d.layout()
                    + " differs from prefill's " + ctx.layout);
        }
        if (d.numTokens() != numTokens) {
            throw new KvException(KvError.INVALID_PARAMS, "request " + requestId + ": decode expects "
                    + d.numTokens() + " prompt positions, prefill computes " + numTokens);
        }
    }

    /** Tells a decode side that its destination was refused. */
    private void refuse(KvTransferParams d, String requestId, String why) {
        ctx.notifyPeer(d.engine(), KvMessage.Type.ERROR, d.connector(), requestId, ConnectorContext.reasonBody(why));
    }

    /** Offers a destination that arrived for a live request: kept, pushed now, or refused. */
    private void offer(PrefillRequest r, KvTransferParams d, long receivedNanos) {
        try {
            checkDestination(d, r.requestId(), r.numTokens());
        } catch (KvException e) {
            refuse(d, d.requestId(), e.getMessage());
            return;
        }
        switch (r.offerDestination(d, deadline(receivedNanos, d))) {
            case PUSH_NOW:
                push(r, d);
                break;
            case REFUSED:
                refuse(d, d.requestId(), "request " + r.requestId() + " already has a destination or ended");
                break;
            default:
                break;
        }
    }

    /** See {@link PrefillRequest#finish(TransferMode)}. */
    KvTransferParams finish(PrefillRequest r, TransferMode requested) {
        PrefillRequest.Finish outcome = r.markFinished(System.nanoTime());
        TransferMode mode = outcome == PrefillRequest.Finish.PUSH ? TransferMode.PUSH
                : requested != null ? requested : ctx.config.mode();
        long unclaimed = ctx.config.unclaimedTimeout().toMillis();
        KvTransferParams source = new KvTransferParams(r.requestId(), KvTransferParams.Role.PREFILL, mode,
                ctx.engine.localSegmentName(), ctx.id, r.numTokens(), 0, r.blockTable(), ctx.layout,
                ctx.transfers.bases(KvPart.KEY), ctx.transfers.bases(KvPart.VALUE), unclaimed,
                System.currentTimeMillis() + unclaimed, null);
        if (outcome == PrefillRequest.Finish.ABORTED) {
            end(r, null, new KvException(KvError.ABORTED, "prefill request " + r.requestId() + " aborted: "
                    + r.abortReason()));
        } else if (outcome == PrefillRequest.Finish.PUSH) {
            KvTransferParams dest = r.destination();
            ctx.io().execute(() -> push(r, dest));
        }
        return source;
    }

    /** Writes the request's blocks into the destination's; runs on an I/O thread. */
    private void push(PrefillRequest r, KvTransferParams d) {
        try {
            long deadline = r.destinationDeadline();
            if (deadline != Long.MAX_VALUE && System.nanoTime() - deadline > 0) {
                throw new KvException(KvError.EXPIRED, "the decode destination of request " + r.requestId()
                        + " expired before prefill finished (MC_KV_WAIT_TIMEOUT on the decode side)");
            }
            int startBlock = d.startToken() / ctx.layout.blockTokens();
            int[] src = Arrays.copyOfRange(r.blockTable(), startBlock, startBlock + d.blockCount());
            List<BlockRun> runs = BlockRuns.coalesce(src, d.blockIds());
            if (runs.isEmpty()) {
                delivered(r, d, stats(r, d, 0, 0, 0, 0, 0));
                return;
            }
            if (!ctx.transfers.start(Opcode.WRITE, d, src, runs, r::attachBatch, moved -> onPushDone(r, d, moved))) {
                throw new KvException(KvError.ABORTED, "request " + r.requestId() + " aborted: " + r.abortReason());
            }
        } catch (RuntimeException e) {
            KvException k = e instanceof KvException ? (KvException) e
                    : new KvException(KvError.TRANSFER_FAILED, "push of request " + r.requestId() + " to "
                            + d.engine() + " failed: " + e.getMessage(), e);
            end(r, null, k);
            refuse(d, r.requestId(), k.getMessage());
        }
    }

    private void onPushDone(PrefillRequest r, KvTransferParams d, BlockTransfers.Moved moved) {
        TransferBatch b = moved.batch();
        if (b.isAllCompleted()) {
            ctx.counters.bytesSent.addAndGet(moved.bytes());
            delivered(r, d, stats(r, d, moved.blocks(), moved.runs(), b.size(), moved.bytes(), moved.transferNanos()));
        } else {
            KvException e = new KvException(KvError.TRANSFER_FAILED, "push of request " + r.requestId() + " to "
                    + d.engine() + " failed: " + BlockTransfers.failure(b));
            end(r, null, e);
            refuse(d, r.requestId(), e.getMessage());
        }
    }

    private static KvTransferStats stats(PrefillRequest r, KvTransferParams d, int blocks, int runs, int requests,
            long bytes, long transferNanos) {
        return new KvTransferStats(r.requestId(), "prefill", TransferMode.PUSH, d.engine(), r.numTokens(),
                d.startToken(), blocks, runs, requests, bytes, transferNanos, System.nanoTime() - r.readyNanos());
    }

    /** The push completed: end the request and tell the decode side. */
    private void delivered(PrefillRequest r, KvTransferParams d, KvTransferStats stats) {
        end(r, stats, null);
        ctx.notifyPeer(d.engine(), KvMessage.Type.DONE, d.connector(), r.requestId(),
                ConnectorContext.statsBody(stats));
    }

    /** See {@link PrefillRequest#requestAbort}; tells the decode side when the application aborted. */
    void abort(PrefillRequest r, String reason, boolean fromApp) {
        if (r.requestAbort(reason, fromApp) != PrefillRequest.Abort.END_NOW) {
            return;
        }
        end(r, null, new KvException(KvError.ABORTED, "prefill request " + r.requestId() + " aborted: " + reason));
        KvTransferParams dest = r.destination();
        if (fromApp && dest != null) {
            refuse(dest, r.requestId(), "prefill aborted: " + reason);
        }
    }

    /** Ends the request: frees its blocks, then completes it with the stats or the error. */
    private void end(PrefillRequest r, KvTransferStats stats, KvException error) {
        if (!r.markEnded()) {
            return;
        }
        if (requests.remove(r.requestId(), r)) {
            recentlyEnded.put(r.requestId(), System.nanoTime());
        }
        r.cache().close();
        ctx.allocator.release(r.blockTable());
        if (error == null) {
            ctx.counters.prefillCompleted.incrementAndGet();
        } else {
            (error.error() == KvError.EXPIRED ? ctx.counters.prefillExpired : ctx.counters.prefillFailed)
                    .incrementAndGet();
            LOG.debug("prefill request {} ended: {}", r.requestId(), error.getMessage());
        }
        r.settle(stats, error);
    }

    // ------------------------------------------------------------------ messages

    /**
     * A decode side sent its destination (prefill first, push). Only the decode engine the
     * destination names may send it: nobody can point a request's KV cache at someone else.
     */
    void onDestination(String sender, KvMessage m) {
        KvTransferParams d;
        try {
            d = KvTransferParams.fromJson(m.body.getAsJsonObject("params"));
        } catch (RuntimeException e) {
            LOG.debug("malformed destination for {}: {}", m.requestId, e.toString());
            return;
        }
        if (!ctx.senders.accepts(sender, d.engine(), m)) {
            return;
        }
        PrefillRequest r = requests.get(m.requestId);
        if (r != null) {
            offer(r, d, System.nanoTime());
        } else if (recentlyEnded.containsKey(m.requestId)) {
            refuse(d, d.requestId(), "prefill request " + m.requestId
                    + " already ended (expired, aborted or delivered)");
        } else {
            pendingDestinations.put(m.requestId, new PendingDestination(d, System.nanoTime()));
        }
    }

    /** The decode side gave up on a request; only the decode engine that gave its destination may say so. */
    void onAbort(String sender, KvMessage m) {
        PendingDestination pending = pendingDestinations.get(m.requestId);
        PrefillRequest r = requests.get(m.requestId);
        if (pending == null && r == null) {
            return; // nothing to abort: the request ended already, or never started here
        }
        KvTransferParams dest = pending != null ? pending.params() : r.destination();
        if (!ctx.senders.accepts(sender, dest == null ? null : dest.engine(), m)) {
            return;
        }
        pendingDestinations.remove(m.requestId, pending);
        if (r != null) {
            abort(r, "decode worker aborted: " + m.reason(), false);
        }
    }

    /** The decode side read a result (pull) and releases it, with its stats or why it failed. */
    void onRelease(KvMessage m) {
        PrefillRequest r = requests.get(m.requestId);
        if (r == null || !r.isReady()) {
            return;
        }
        if (m.body.has("stats")) { // the decode side read the blocks: it holds the KV cache
            end(r, KvTransferStats.reportedBy(m.from, m.body.get("stats"),
                    KvTransferStats.unreported(r.requestId(), TransferMode.PULL, r.numTokens(), 0),
                    "prefill", System.nanoTime() - r.readyNanos()), null);
        } else {
            end(r, null, new KvException(KvError.PEER_ERROR, "decode worker reported: " + m.reason()));
        }
    }

    // ------------------------------------------------------------------ housekeeping

    /** Frees results and destinations nobody claimed within {@code MC_KV_UNCLAIMED_TIMEOUT}. */
    void sweep() {
        long now = System.nanoTime();
        Duration unclaimed = ctx.config.unclaimedTimeout();
        long limit = unclaimed.toNanos();
        for (PrefillRequest r : requests.values()) {
            if (r.isUnclaimedSince(now, limit)) {
                end(r, null, new KvException(KvError.EXPIRED, "prefill result of request " + r.requestId()
                        + " was not claimed within " + unclaimed.toMillis() + " ms (MC_KV_UNCLAIMED_TIMEOUT)"));
            }
        }
        recentlyEnded.values().removeIf(t -> now - t > limit);
        for (Map.Entry<String, PendingDestination> e : pendingDestinations.entrySet()) {
            PendingDestination p = e.getValue();
            if (now - p.receivedNanos() > limit && pendingDestinations.remove(e.getKey(), p)) {
                refuse(p.params(), e.getKey(), "no prefill request " + e.getKey() + " started on "
                        + ctx.engine.localSegmentName() + " within " + unclaimed.toMillis() + " ms");
            }
        }
    }

    /** Aborts every live request and drops pending destinations (the connector closes). */
    void closeAll() {
        for (PrefillRequest r : new ArrayList<>(requests.values())) {
            abort(r, "the prefill connector closed", true);
        }
        pendingDestinations.clear();
    }
}
