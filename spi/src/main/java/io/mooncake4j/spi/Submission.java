package io.mooncake4j.spi;

import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.BufferDescriptor;

/**
 * The requests of one submitted batch that go to one segment, as the engine hands them to a
 * transport. The engine has already checked every request: local memory is registered and pinned,
 * the remote range lies inside one buffer of the peer's descriptor ({@link #remoteBuffer}), and the
 * length is positive. What the engine found while checking is handed over per request with no
 * lookup and no allocation: the transport's own registration of the local region ({@link
 * #localRegistration}) and the peer's buffer ({@link #remoteBuffer}, with its parsed keys).
 *
 * <p>Reporting. A transport may split a request into parts: call {@link #expectParts} once before
 * issuing the first part (default 1), then {@link #partDone} or {@link #partFailed} exactly once per
 * part; or end a request none of whose parts was issued with {@link #fail}. A request's status is
 * decided when its last part reports (the first failed part decides), unless the engine ended it
 * before (deadline: TIMEOUT; batch or engine closed: CANCELED). Reports after the request ended do
 * not change its status, but they still count: the local memory of a request stays pinned (cannot
 * be unregistered) until every part issued for it has been reported. So a transport must report
 * every part it issued exactly once, also after {@link Transport#abort} and when closing.
 *
 * <p>Validity. The accessors describe the round this submission belongs to while {@link #isDone}
 * is false for the request. Once the request has ended, its batch may be reset and refilled by the
 * user: a transport must read what it needs (addresses, lengths) before issuing a part and must not
 * start a part of a request that {@link #isDone} (report it with {@link #fail} instead, or with
 * {@link #partFailed} when parts were expected).
 *
 * <p>Thread safe: any thread may report.
 */
public interface Submission {
    /** Number of requests. */
    int size();

    /** The opcode of request {@code i}. */
    Opcode opcode(int i);

    /** Local address of request {@code i}. */
    long localAddress(int i);

    /** Absolute remote address of request {@code i}. */
    long remoteAddress(int i);

    /** Length in bytes of request {@code i}. */
    long length(int i);

    /**
     * Whether the local memory of request {@code i} is GPU memory ({@code cuda:N}); the remote side's
     * location is {@link #remoteBuffer}{@code (i).name()}.
     */
    boolean localIsCuda(int i);

    /**
     * The registration that THIS transport returned from {@link Transport#registerRegion} for the
     * local region holding request {@code i}'s memory ({@link RegionRegistration#NONE} for a transport
     * that keeps none). No lookup, no allocation.
     */
    RegionRegistration localRegistration(int i);

    /**
     * The peer's buffer that holds request {@code i}'s remote range, from the descriptor the request
     * was validated against (with its parsed {@link BufferDescriptor#rkeys()}). No lookup, no
     * allocation.
     */
    BufferDescriptor remoteBuffer(int i);

    /** The deadline as a {@link System#nanoTime()} value. */
    long deadlineNanos();

    /**
     * Whether the engine gave up on this submission (deadline passed, batch or engine closed), set
     * before {@link Transport#abort} is called: a transport may check it to drop parts it has not
     * issued yet (reporting them).
     */
    boolean isAborted();

    /** Request {@code i} will complete in {@code parts} parts (default 1); call before issuing any. */
    void expectParts(int i, int parts);

    /** One part of request {@code i} ended with {@code status}. */
    void partDone(int i, TransferStatus status);

    /** One part of request {@code i} failed with {@code status}; the reason is kept for the user. */
    void partFailed(int i, TransferStatus status, String reason);

    /**
     * Ends request {@code i} with {@code status} and a reason kept for the user, and reports all of
     * its parts at once. Only for a request none of whose parts was issued (refused or dropped before
     * sending); otherwise use {@link #partFailed} per part.
     */
    void fail(int i, TransferStatus status, String reason);

    /** Whether request {@code i} has ended (completed, failed, timed out or cancelled). */
    boolean isDone(int i);
}
