package io.mooncake4j.spi;

import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;

/**
 * The requests of one submitted batch that go to one segment, as the engine hands them to a
 * transport. The engine has already checked every request: local memory is registered and pinned
 * until the request ends, the remote range lies inside one buffer of the peer's descriptor, and the
 * length is positive.
 *
 * <p>A transport may split a request into parts: call {@link #expectParts} once before issuing the
 * first part, then {@link #partDone} or {@link #partFailed} exactly once per part. A request ends
 * when its last part reports, so the caller is never told a request ended while one of its parts
 * still moves data; the first failed part decides the status. Calls after the request has ended
 * (for example after a timeout, when the engine calls {@link Transport#abort}) are ignored, so a
 * transport never has to worry about racing the deadline.
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

    /** Whether the local memory of request {@code i} is GPU memory. */
    boolean localIsCuda(int i);

    /** The deadline as a {@link System#nanoTime()} value. */
    long deadlineNanos();

    /** Request {@code i} will complete in {@code parts} parts (default 1). */
    void expectParts(int i, int parts);

    /** One part of request {@code i} ended with {@code status}. */
    void partDone(int i, TransferStatus status);

    /** One part of request {@code i} failed with {@code status}; the reason is kept for the user. */
    void partFailed(int i, TransferStatus status, String reason);

    /**
     * Ends request {@code i} at once with {@code status} and a reason kept for the user. Only for a
     * request none of whose parts is in flight (refused before sending); otherwise use {@link
     * #partFailed} per part.
     */
    void fail(int i, TransferStatus status, String reason);

    /** Whether request {@code i} has ended (completed, failed, timed out or cancelled). */
    boolean isDone(int i);
}
