package io.mooncake4j.transport.efa;

import io.mooncake4j.TransferStatus;
import io.mooncake4j.nativeio.fabric.FabricWaitSet;
import io.mooncake4j.nativeio.fabric.LibFabric;
import io.mooncake4j.nativeio.fabric.RmaOps;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A completion-queue progress thread for a set of NICs, and the only thread that posts to them
 * (single writer): it cuts queued submissions into RMA operations, posts them in one JNI call per
 * NIC and loop, reads completions in batches, and reports parts to the engine.
 *
 * <ul>
 *   <li>Back-pressure: an operation needs a free context slot on its NIC (the in-flight cap); work
 *       beyond the cap waits in the queue, and is dropped only when the engine aborts it (deadline).
 *   <li>Passive side: the thread keeps reading the completion queues while it has nothing of its own
 *       in flight, because peers' operations only progress when this endpoint is driven (socket and
 *       shm providers). When idle it blocks in {@code poll()} on the queues' wait descriptors (after
 *       {@code fi_trywait}), woken by peers' traffic or new work, or, without a wait object, parks
 *       with a growing pause up to 1 ms, so it does not take a core from the other processes of a
 *       small host.
 *   <li>Errors read from the error queue end their parts FAILED with the provider's text.
 *   <li>A write part is reported COMPLETED only when its data is in the peer's memory (the caller
 *       may notify the peer next): every write asks for delivery completion, except on a provider
 *       that places writes in posting order, where the last write of each submission in a posted
 *       batch asks and the earlier ones are reported when it completes ({@link EfaDelivery}).
 *   <li>Memory being unregistered ({@link #release}): operations the provider accepted cannot be
 *       cancelled, so a NIC with some in flight on that memory (a peer stopped or unreachable) has
 *       its endpoint closed and reopened; every operation in flight on it then ends, those of other
 *       requests FAILED saying why.
 * </ul>
 */
final class EfaProgress implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(EfaProgress.class);
    private static final int SPINS_BEFORE_WAIT = 2000;
    private static final int YIELDS_BEFORE_PARK = 20_000;
    private static final long BUSY_PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(50);
    /**
     * Longest pause of an idle thread whose NICs have no wait descriptor (shm): peers' writes wait
     * for this endpoint's progress, so a longer pause caps their throughput (1 ms halved shm's 64 KiB
     * writes); a wake-up every 50 us costs a few percent of a core.
     */
    private static final long MAX_PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(50);
    private static final int IDLE_WAIT_MILLIS = 100;

    private final EfaNic[] nics;
    private final long slice;
    private final Queue<EfaWork> incoming = new ConcurrentLinkedQueue<>();
    private final Queue<Release> releases = new ConcurrentLinkedQueue<>();
    private final BiConsumer<EfaNic, Boolean> afterReset;
    private final ArrayDeque<EfaWork> pending = new ArrayDeque<>();
    private final long[] errorOut = new long[3];
    private final FabricWaitSet waitSet;
    private final Thread thread;
    private volatile boolean running = true;
    private volatile boolean waiting;
    private int roundRobin;
    private int postRound;

    /**
     * @param afterReset called on this thread after a NIC's endpoint was reset (see {@link #release})
     *     with whether its address changed, to rebind regions and announce a new address
     */
    EfaProgress(List<EfaNic> nics, long slice, String name, BiConsumer<EfaNic, Boolean> afterReset) {
        this.nics = nics.toArray(EfaNic[]::new);
        this.afterReset = afterReset;
        for (EfaNic nic : this.nics) {
            nic.lastWriteDelivers = nic.fabric.info().orderedWriteSize() >= slice;
        }
        this.slice = slice;
        this.waitSet = new FabricWaitSet(nics.stream().map(n -> n.fabric).toList());
        this.thread = new Thread(this, name);
        thread.setDaemon(true);
    }

    void start() {
        thread.start();
    }

    /** Queues a submission; returns at once. */
    void submit(EfaWork w) {
        incoming.add(w);
        if (!running && !thread.isAlive()) {
            failQueued(TransferStatus.FAILED, "the EFA progress thread has stopped");
        } else if (waiting) {
            wake();
        }
    }

    /**
     * Stops every user of {@code registration} on this thread's NICs: a NIC with operations on it in
     * flight (accepted by the provider) has its endpoint reset, and every operation in flight on that
     * NIC ends; operations staged but not accepted are dropped. The region's own operations are
     * reported FAILED (their requests had already ended: the engine unregisters only after their
     * deadline), the others FAILED with the reason. Completes once done, on this thread.
     */
    CompletableFuture<Void> release(EfaRegistration registration) {
        Release r = new Release(registration, new CompletableFuture<>());
        releases.add(r);
        if (!thread.isAlive()) {
            r.done.completeExceptionally(new IllegalStateException("the EFA progress thread has stopped"));
        } else {
            wake();
        }
        return r.done;
    }

    private record Release(EfaRegistration registration, CompletableFuture<Void> done) {}

    private void wake() {
        LockSupport.unpark(thread);
        for (EfaNic nic : nics) {
            nic.fabric.signal();
        }
    }

    @Override
    public void run() {
        int idle = 0;
        long park = 1000;
        try {
            while (running) {
                boolean busy = runReleases();
                busy |= drainIncoming();
                busy |= issue();
                busy |= post();
                busy |= reap();
                if (busy) {
                    idle = 0;
                    park = 1000;
                    continue;
                }
                int inFlight = 0;
                for (EfaNic nic : nics) {
                    inFlight += nic.inFlight();
                }
                if (++idle < SPINS_BEFORE_WAIT) {
                    Thread.onSpinWait();
                    continue;
                }
                if (inFlight > 0 || !pending.isEmpty()) {
                    // Waiting on the provider or the peer: give the core away between polls.
                    if (idle < YIELDS_BEFORE_PARK) {
                        Thread.yield();
                    } else {
                        LockSupport.parkNanos(BUSY_PARK_NANOS);
                    }
                    continue;
                }
                waiting = true;
                if (incoming.isEmpty() && releases.isEmpty()) {
                    park = idleWait(park);
                }
                waiting = false;
            }
        } catch (Throwable t) {
            log.error("EFA progress thread {} died; its queued transfers fail", thread.getName(), t);
            running = false;
            failQueued(TransferStatus.FAILED, "the EFA progress thread died: " + t);
        }
    }

    private boolean runReleases() {
        Release r;
        boolean any = false;
        while ((r = releases.poll()) != null) {
            any = true;
            try {
                for (EfaNic nic : nics) {
                    release(nic, r.registration);
                }
                r.done.complete(null);
            } catch (RuntimeException e) {
                r.done.completeExceptionally(e);
            }
        }
        return any;
    }

    private void release(EfaNic nic, EfaRegistration registration) {
        boolean[] staged = new boolean[nic.capacity];
        for (int k = nic.stagedFrom; k < nic.stagedTo; k++) {
            staged[nic.ops.slot(k)] = true;
        }
        String region = registration.region.toString();
        dropStaged(nic, registration, "dropped: " + region + " is being unregistered");
        boolean posted = false;
        for (int slot = 0; slot < nic.capacity && !posted; slot++) {
            posted = !staged[slot] && nic.slotRegistration[slot] == registration;
        }
        if (!posted) {
            return;
        }
        log.warn("EFA {}: operations on {}, which is being unregistered, are still in flight (peer stopped or"
                + " unreachable): resetting the endpoint, which ends every operation in flight on it", nic, region);
        String reason = "EFA " + nic + ": the endpoint was reset to stop operations on " + region
                + " (unregistered while a peer had not answered them); this operation was in flight and ended with"
                + " it: retry it";
        RuntimeException failure = null;
        boolean addressChanged = false;
        try {
            addressChanged = nic.resetEndpoint();
        } catch (RuntimeException e) {
            failure = e;
            reason = "EFA " + nic + ": the endpoint was closed to stop operations on " + region
                    + " and could not be reopened (" + e.getMessage() + ")";
        }
        for (int slot = 0; slot < nic.capacity; slot++) {
            if (!staged[slot]) {
                finish(nic, slot, TransferStatus.FAILED, reason);
            }
        }
        for (int k = nic.stagedFrom; k < nic.stagedTo; k++) {
            // a delivery-complete write still staged goes out on the new endpoint: it cannot vouch
            // for the writes sent on the old one
            EfaWork w = nic.slotWork[nic.ops.slot(k)];
            EfaDelivery d = w == null ? null : w.existingDelivery(nic.index);
            if (d != null) {
                d.endpointReset(w, nic, reason);
            }
        }
        if (failure != null) {
            throw failure;
        }
        afterReset.accept(nic, addressChanged);
    }

    /** Drops staged (not accepted) operations on {@code registration} or of aborted work, keeping the others in order. */
    private static void dropStaged(EfaNic nic, EfaRegistration registration, String reason) {
        int kept = nic.stagedFrom;
        for (int k = nic.stagedFrom; k < nic.stagedTo; k++) {
            int slot = nic.ops.slot(k);
            EfaWork w = nic.slotWork[slot];
            if (nic.slotRegistration[slot] == registration || (w != null && w.work.isAborted())) {
                finish(nic, slot, w != null && w.work.isAborted() ? w.abortStatus() : TransferStatus.FAILED, reason);
            } else {
                nic.ops.move(k, kept++);
            }
        }
        nic.stagedTo = kept;
        if (nic.stagedFrom == nic.stagedTo) {
            nic.stagedFrom = 0;
            nic.stagedTo = 0;
        }
    }

    /** Reports every queued part not yet issued as failed (operations in flight are left alone). */
    private synchronized void failQueued(TransferStatus status, String reason) {
        drainIncoming();
        for (EfaWork w : pending) {
            w.dropUnissued(slice, status, reason);
        }
        pending.clear();
    }

    /**
     * Waits while nothing of ours is in flight: blocks on the completion queues' wait descriptors
     * (woken by a peer's traffic, which the next loop then progresses, or by {@link #submit}), or
     * without them parks with a growing pause. Returns the next pause.
     */
    private long idleWait(long park) {
        if (!waitSet.isEmpty()) {
            waitSet.await(IDLE_WAIT_MILLIS);
            if (waitSet.size() == nics.length) {
                return park;
            }
        }
        LockSupport.parkNanos(park);
        return Math.min(park * 2, MAX_PARK_NANOS);
    }

    private boolean drainIncoming() {
        boolean any = false;
        EfaWork w;
        while ((w = incoming.poll()) != null) {
            pending.add(w);
            any = true;
        }
        return any;
    }

    /** Cuts pending work into operations while NICs have free slots; true when any was staged. */
    private boolean issue() {
        boolean any = false;
        while (!pending.isEmpty()) {
            EfaWork w = pending.peek();
            if (w.work.isAborted()) {
                w.dropUnissued(slice, w.abortStatus(), "aborted before it was sent");
                pending.poll();
                continue;
            }
            if (!w.hasNext(slice)) {
                pending.poll();
                continue;
            }
            EfaNic nic = nextNicWithCredit();
            if (nic == null) {
                dropAbortedBehindHead();
                return any;
            }
            stage(w, nic);
            any = true;
        }
        return any;
    }

    /** While the head waits for credit, work the engine gave up on behind it is dropped at once. */
    private void dropAbortedBehindHead() {
        if (pending.size() > 1) {
            EfaWork head = pending.peekFirst();
            pending.removeIf(w -> w != head && w.work.isAborted() && dropped(w));
        }
    }

    private boolean dropped(EfaWork w) {
        w.dropUnissued(slice, w.abortStatus(), "aborted before it was sent");
        return true;
    }

    private EfaNic nextNicWithCredit() {
        for (int k = 0; k < nics.length; k++) {
            EfaNic nic = nics[(roundRobin + k) % nics.length];
            if (nic.hasCredit()) {
                roundRobin = (roundRobin + k + 1) % nics.length;
                return nic;
            }
        }
        return null;
    }

    /** Stages the next operation of {@code w} on {@code nic}. */
    private void stage(EfaWork w, EfaNic nic) {
        var sub = w.work;
        int i = w.next;
        int last = i;
        long length = sub.length(i) - w.offset;
        long start = w.offset;
        if (length > slice) {
            if (w.offset == 0) {
                sub.expectParts(i, (int) ((length + slice - 1) / slice));
            }
            length = slice;
            w.offset += slice;
        } else if (w.offset > 0) {
            w.offset = 0;
            w.next = i + 1;
        } else {
            while (last + 1 < sub.size() && w.canMerge(last + 1, length, slice)) {
                last++;
                length += sub.length(last);
            }
            w.next = last + 1;
        }
        boolean read = w.isRead(i);
        int flags = read ? RmaOps.READ : 0;
        if (!read && !nic.lastWriteDelivers) {
            // unordered provider: every write asks, so that a part is reported COMPLETED only once its
            // bytes are in the peer's memory (transmit completion alone let writes to a stopped or
            // dead peer end COMPLETED); on an ordered one, post() marks the last write of each batch
            flags |= RmaOps.DELIVERY_COMPLETE;
        }
        EfaRegistration reg = w.local(i);
        var buffer = w.remote(i);
        int device = w.peer.deviceFor(nic.index);
        int slot = nic.takeSlot();
        nic.slotWork[slot] = w;
        nic.slotRegistration[slot] = reg;
        nic.slotSeq[slot] = nic.nextSeq++;
        nic.slotOrderedWrite[slot] = !read && nic.lastWriteDelivers;
        nic.slotFirst[slot] = i;
        nic.slotLast[slot] = last;
        nic.slotBytes[slot] = length;
        nic.ops.set(
                nic.stagedTo++,
                slot,
                flags,
                sub.localAddress(i) + start,
                length,
                reg.descriptors[nic.index],
                nic.remoteAddress(sub.remoteAddress(i) + start, buffer.address()),
                buffer.rkeys()[device],
                w.peer.destFor(nic.index));
    }

    /** Posts every NIC's staged operations, one JNI call each; true when any was accepted. */
    private boolean post() {
        boolean any = false;
        for (EfaNic nic : nics) {
            if (nic.lastWriteDelivers && nic.stagedFrom < nic.stagedTo) {
                markLastWrites(nic);
            }
            while (nic.stagedFrom < nic.stagedTo) {
                int n = nic.fabric.post(nic.ops, nic.stagedFrom, nic.stagedTo - nic.stagedFrom);
                nic.stagedFrom += n;
                any |= n > 0;
                if (nic.stagedFrom == nic.stagedTo) {
                    break;
                }
                long rc = nic.ops.rc(nic.stagedFrom);
                if (rc == -LibFabric.FI_EAGAIN) {
                    // The provider is backlogged (a dead peer that rxm keeps reconnecting to answers
                    // EAGAIN for ever). An operation not yet accepted holds no provider reference:
                    // drop it when the engine gave up on it, so it neither pins memory for ever nor
                    // blocks the operations behind it.
                    int slot = nic.ops.slot(nic.stagedFrom);
                    EfaWork w = nic.slotWork[slot];
                    if (w != null && w.work.isAborted()) {
                        nic.stagedFrom++;
                        finish(nic, slot, w.abortStatus(), "aborted before the provider accepted it");
                        continue;
                    }
                    break;
                }
                int slot = nic.ops.slot(nic.stagedFrom++);
                finish(nic, slot, TransferStatus.FAILED,
                        "EFA " + nic + ": posting failed: " + LibFabric.strerror((int) -rc));
            }
            if (nic.stagedFrom == nic.stagedTo) {
                nic.stagedFrom = 0;
                nic.stagedTo = 0;
            }
        }
        return any;
    }

    /**
     * Makes the last staged write of each submission ask for delivery completion (see {@link
     * EfaDelivery}): every write of a submission then has a later delivery-complete one on this NIC.
     */
    private void markLastWrites(EfaNic nic) {
        int round = ++postRound;
        for (int k = nic.stagedTo - 1; k >= nic.stagedFrom; k--) {
            int slot = nic.ops.slot(k);
            EfaWork w = nic.slotWork[slot];
            if (w == null || !nic.slotOrderedWrite[slot] || w.postMark == round) {
                continue;
            }
            w.postMark = round;
            if (!nic.slotDelivery[slot]) {
                nic.slotDelivery[slot] = true;
                nic.ops.addFlags(k, RmaOps.DELIVERY_COMPLETE);
                w.delivery(nic.index).deliveryPosted(nic.slotSeq[slot]);
            }
        }
    }

    private boolean reap() {
        boolean any = false;
        for (EfaNic nic : nics) {
            any |= reapNic(nic) > 0;
        }
        return any;
    }

    private int reapNic(EfaNic nic) {
        int n = nic.fabric.reap(nic.completions, 64);
        for (int k = 0; k < n; k++) {
            finish(nic, nic.completions.slot(k), TransferStatus.COMPLETED, null);
        }
        if (n == -LibFabric.FI_EAVAIL) {
            String text = nic.fabric.readError(errorOut);
            if (text != null && errorOut[0] >= 0) {
                finish(nic, (int) errorOut[0], TransferStatus.FAILED, "EFA " + nic + ": " + text);
            }
            return 1;
        }
        if (n < 0) {
            log.warn("EFA: reading the completion queue of {} failed: {}", nic, LibFabric.strerror(-n));
        }
        return n;
    }

    /**
     * Reports the part in {@code slot} for every request it covers and frees the slot. A write on a
     * NIC where {@link EfaNic#lastWriteDelivers} goes through its submission's {@link EfaDelivery}.
     */
    private static void finish(EfaNic nic, int slot, TransferStatus status, String reason) {
        EfaWork w = nic.slotWork[slot];
        if (w == null) {
            return;
        }
        int first = nic.slotFirst[slot];
        int last = nic.slotLast[slot];
        long bytes = nic.slotBytes[slot];
        long seq = nic.slotSeq[slot];
        boolean ordered = nic.slotOrderedWrite[slot];
        boolean delivery = nic.slotDelivery[slot];
        nic.releaseSlot(slot);
        if (ordered && delivery) {
            EfaDelivery.report(w, nic, first, last, bytes, status, reason);
            w.delivery(nic.index).deliveryEnded(w, nic, seq, status == TransferStatus.COMPLETED);
        } else if (ordered && status == TransferStatus.COMPLETED) {
            w.delivery(nic.index).writeCompleted(w, nic, seq, first, last, bytes);
        } else {
            EfaDelivery.report(w, nic, first, last, bytes, status, reason);
        }
    }

    /**
     * Stops the thread (bounded wait), then reports every part it still held: queued work and
     * operations in flight end CANCELED. Call before the NICs close; the NICs' closing is what makes
     * the provider let go of the memory of operations still in flight.
     */
    void stop(long timeoutMillis) {
        running = false;
        wake();
        try {
            thread.join(timeoutMillis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) {
            log.warn("EFA progress thread {} did not stop within {} ms", thread.getName(), timeoutMillis);
        }
    }

    /** After {@link #stop} and the NICs' closing: reports what never completed. */
    void failRemaining(String reason) {
        failQueued(TransferStatus.CANCELED, reason);
        for (EfaNic nic : nics) {
            for (int slot = 0; slot < nic.capacity; slot++) {
                finish(nic, slot, TransferStatus.CANCELED, reason);
            }
        }
    }
}
