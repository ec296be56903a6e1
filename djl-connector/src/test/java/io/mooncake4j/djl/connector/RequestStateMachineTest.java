package io.mooncake4j.djl.connector;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import java.util.EnumSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Delayed;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BiPredicate;
import org.junit.jupiter.api.Test;

/**
 * The requests' state machines on their own (no side, pool or engine): which transitions are legal
 * and what each tells the side to do.
 */
class RequestStateMachineTest {
    private static PrefillRequest prefill() {
        return new PrefillRequest(null, "r", 8, new int[] {1, 2}, null, null, Long.MAX_VALUE);
    }

    private static DecodeRequest decode() {
        return new DecodeRequest(null, "r", 8, 0, new int[] {1, 2}, null, TransferMode.PUSH, null);
    }

    @Test
    void shouldAllowOnlyForwardPrefillTransitions() {
        assertEquals(EnumSet.of(PrefillRequest.State.READY, PrefillRequest.State.TRANSFERRING,
                PrefillRequest.State.ENDED), legal(PrefillRequest.State.COMPUTING));
        assertEquals(EnumSet.of(PrefillRequest.State.TRANSFERRING, PrefillRequest.State.ENDED),
                legal(PrefillRequest.State.READY));
        assertEquals(EnumSet.of(PrefillRequest.State.ENDED), legal(PrefillRequest.State.TRANSFERRING));
        assertEquals(EnumSet.noneOf(PrefillRequest.State.class), legal(PrefillRequest.State.ENDED));
    }

    @Test
    void shouldAllowOnlyForwardDecodeTransitions() {
        assertEquals(EnumSet.of(DecodeRequest.State.READY, DecodeRequest.State.FAILED),
                legal(DecodeRequest.State.WAITING));
        assertEquals(EnumSet.of(DecodeRequest.State.CLOSED), legal(DecodeRequest.State.READY));
        assertEquals(EnumSet.noneOf(DecodeRequest.State.class), legal(DecodeRequest.State.FAILED));
        assertEquals(EnumSet.noneOf(DecodeRequest.State.class), legal(DecodeRequest.State.CLOSED));
    }

    @Test
    void shouldPushWhenADestinationReachesAReadyPrefillAndRefuseASecond() {
        PrefillRequest r = prefill();
        assertEquals(PrefillRequest.Finish.WAIT_FOR_CLAIM, r.markFinished(1));
        assertTrue(r.isReady());
        KvTransferParams d = KvTransferParamsTest.destination();
        assertEquals(PrefillRequest.Offer.PUSH_NOW, r.offerDestination(d, 5));
        assertEquals(5, r.destinationDeadline());
        assertEquals(PrefillRequest.Offer.REFUSED, r.offerDestination(d, 6));
        assertEquals(5, r.destinationDeadline(), "a refused destination changes nothing");
        assertEquals(KvError.INVALID_PARAMS, assertThrows(KvException.class, () -> r.markFinished(2)).error());
        assertTrue(r.markEnded());
        assertFalse(r.markEnded(), "ends once");
        assertEquals(PrefillRequest.Abort.IGNORED, r.requestAbort("late", true));
    }

    @Test
    void shouldEndAnAbortedComputingPrefillAtFinishWhenTheDecodeSideAborted() {
        PrefillRequest r = prefill();
        assertEquals(PrefillRequest.Abort.DEFERRED, r.requestAbort("decode gone", false), "the model may still write");
        assertEquals(PrefillRequest.Abort.IGNORED, r.requestAbort("again", true));
        assertEquals(PrefillRequest.Finish.ABORTED, r.markFinished(1));
        assertEquals("decode gone", r.abortReason());
        assertTrue(r.markEnded());
        assertEquals(PrefillRequest.Abort.END_NOW, prefill().requestAbort("model failed", true));
    }

    @Test
    void shouldRefuseAPushBatchAfterAnAbortAndAnyBatchOutsideTransferring() {
        PrefillRequest ready = prefill();
        ready.markFinished(1);
        assertThrows(IllegalStateException.class, () -> ready.attachBatch(null));
        PrefillRequest pushing = new PrefillRequest(null, "r", 8, new int[] {1}, null,
                KvTransferParamsTest.destination(), Long.MAX_VALUE);
        assertEquals(PrefillRequest.Finish.PUSH, pushing.markFinished(1));
        assertEquals(PrefillRequest.Abort.DEFERRED, pushing.requestAbort("stop", true), "its push is being prepared");
        assertFalse(pushing.attachBatch(null), "the push sees the abort");
    }

    @Test
    void shouldFailOrCompleteADecodeRequestOnceAndCancelItsTimeout() {
        DecodeRequest r = decode();
        FakeTask timeout = new FakeTask();
        r.armTimeout(timeout);
        assertTrue(r.markReady());
        assertTrue(timeout.isCancelled(), "the wait timeout stops when the cache arrives");
        assertFalse(r.markFailed(), "a ready request does not fail");
        assertFalse(r.attachBatch(null));
        assertEquals(DecodeRequest.Cancel.FREE_BLOCKS, r.markCancelled());
        assertEquals(DecodeRequest.Cancel.NOTHING, r.markCancelled(), "closes once");

        DecodeRequest failed = decode();
        assertEquals(DecodeRequest.Cancel.FAIL_WAITING, failed.markCancelled(), "the side fails a waiting one");
        assertTrue(failed.markFailed());
        assertFalse(failed.markReady(), "a late cache does not revive it");
        FakeTask late = new FakeTask();
        failed.armTimeout(late);
        assertTrue(late.isCancelled(), "a timeout armed after the end is cancelled at once");
        failed.assignDestination(KvTransferParamsTest.destination());
        assertThrows(IllegalStateException.class, () -> failed.assignDestination(KvTransferParamsTest.destination()));
    }

    private static EnumSet<PrefillRequest.State> legal(PrefillRequest.State from) {
        return legal(PrefillRequest.State.class, from, PrefillRequest.State::canMoveTo);
    }

    private static EnumSet<DecodeRequest.State> legal(DecodeRequest.State from) {
        return legal(DecodeRequest.State.class, from, DecodeRequest.State::canMoveTo);
    }

    /** The states {@code from} may move to. */
    private static <S extends Enum<S>> EnumSet<S> legal(Class<S> type, S from, BiPredicate<S, S> canMoveTo) {
        EnumSet<S> to = EnumSet.noneOf(type);
        for (S s : type.getEnumConstants()) {
            if (canMoveTo.test(from, s)) {
                to.add(s);
            }
        }
        return to;
    }

    /** A scheduled task that only records being cancelled. */
    private static final class FakeTask extends CompletableFuture<Object> implements ScheduledFuture<Object> {
        @Override
        public long getDelay(TimeUnit unit) {
            return 0;
        }

        @Override
        public int compareTo(Delayed o) {
            return 0;
        }
    }
}
