package io.mooncake4j.internal.handshake;

import io.mooncake4j.spi.RateLimitedLog;
import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.Notification;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Notifications received and not yet polled, bounded in count, in bytes, and per message, so that
 * peers cannot fill the heap of an application that polls slowly or never.
 *
 * <p>When a bound would be passed, the new notification is refused with a Notify reply other than
 * {@code success}: its sender learns it was not delivered (our {@code sendNotification} throws),
 * whereas dropping the oldest would lose notifications whose senders were told they arrived.
 * Refusals are counted ({@link #refused()}) and logged, at most one line every 30 s.
 *
 * <p>Sizes are UTF-8 bytes (sender name plus text), as on the wire; the heap they hold is at most
 * about twice that.
 */
public final class NotificationInbox {
    private static final Logger LOG = LoggerFactory.getLogger(NotificationInbox.class);

    private final int maxPending;
    private final long maxPendingBytes;
    private final int maxMessageSize;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition notEmpty = lock.newCondition();
    private final ArrayDeque<Notification> queue = new ArrayDeque<>();
    private long pendingBytes;
    private final LongAdder refused = new LongAdder();
    private final RateLimitedLog warnings = new RateLimitedLog(LOG, Duration.ofSeconds(30));

    /**
     * @param maxPending notifications held at most
     * @param maxPendingBytes bytes held at most
     * @param maxMessageSize largest text accepted, in bytes
     */
    public NotificationInbox(int maxPending, long maxPendingBytes, int maxMessageSize) {
        if (maxPending < 1 || maxPendingBytes < 1 || maxMessageSize < 1) {
            throw new IllegalArgumentException(
                    "notification limits must be positive, got "
                            + maxPending
                            + ", "
                            + maxPendingBytes
                            + " bytes, "
                            + maxMessageSize
                            + " bytes per message");
        }
        this.maxPending = maxPending;
        this.maxPendingBytes = maxPendingBytes;
        this.maxMessageSize = maxMessageSize;
    }

    /** An inbox with the limits {@code MC_NOTIFY_*} of {@code config}. */
    public static NotificationInbox from(EngineConfig config) {
        return new NotificationInbox(
                config.notifyMaxPending(),
                config.notifyMaxPendingBytes(),
                config.notifyMaxMessageSize());
    }

    /**
     * Takes a Notify request from {@code from} and returns the reply: {@code success}, or a refusal
     * that says which bound was reached, or that the sender named itself other than it proved.
     *
     * @param authenticatedPeer the segment name the connection proved (null without a secret): the
     *     request's sender name must be this one
     */
    public JsonObject accept(HandshakeMessages.Notify n, InetSocketAddress from, String authenticatedPeer) {
        if (authenticatedPeer != null && !authenticatedPeer.equals(n.sender())) {
            return refuse(
                    from,
                    "the sender calls itself '"
                            + n.sender()
                            + "' but authenticated as '"
                            + authenticatedPeer
                            + "'");
        }
        long textBytes = utf8Length(n.message());
        if (textBytes > maxMessageSize) {
            return refuse(
                    from,
                    "notification of "
                            + textBytes
                            + " bytes is over the limit of "
                            + maxMessageSize
                            + " (MC_NOTIFY_MAX_MESSAGE_SIZE)");
        }
        long size = textBytes + utf8Length(n.sender());
        int held;
        long heldBytes;
        lock.lock();
        try {
            held = queue.size();
            heldBytes = pendingBytes;
            if (held < maxPending && heldBytes + size <= maxPendingBytes) {
                queue.addLast(new Notification(n.sender(), n.message()));
                pendingBytes += size;
                notEmpty.signal();
                return HandshakeMessages.notifyOk();
            }
        } finally {
            lock.unlock();
        }
        return refuse(
                from,
                held
                        + " notifications ("
                        + heldBytes
                        + " bytes) wait to be polled, the most allowed (MC_NOTIFY_MAX_PENDING="
                        + maxPending
                        + ", MC_NOTIFY_MAX_PENDING_BYTES="
                        + maxPendingBytes
                        + "); the receiving application does not call pollNotifications often"
                        + " enough");
    }

    private JsonObject refuse(InetSocketAddress from, String why) {
        refused.increment();
        warnings.warn(
                "refused",
                "refused a notification from {}: {}; {} refused so far",
                from,
                why,
                refused());
        return HandshakeMessages.notifyRefused(why);
    }

    /** Takes every notification held, oldest first. */
    public List<Notification> poll() {
        lock.lock();
        try {
            return drainLocked();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Waits up to {@code wait} for a notification, then takes every one held, oldest first; an
     * empty list when none came in time.
     */
    public List<Notification> poll(Duration wait) throws InterruptedException {
        long nanos = wait.toNanos();
        lock.lockInterruptibly();
        try {
            while (queue.isEmpty()) {
                if (nanos <= 0) {
                    return List.of();
                }
                nanos = notEmpty.awaitNanos(nanos);
            }
            return drainLocked();
        } finally {
            lock.unlock();
        }
    }

    private List<Notification> drainLocked() {
        List<Notification> out = new ArrayList<>(queue);
        queue.clear();
        pendingBytes = 0;
        return out;
    }

    /** Notifications refused so far because a bound was reached. */
    public long refused() {
        return refused.sum();
    }

    /** Notifications held now. */
    public int pending() {
        lock.lock();
        try {
            return queue.size();
        } finally {
            lock.unlock();
        }
    }

    /** Bytes held now. */
    public long pendingBytes() {
        lock.lock();
        try {
            return pendingBytes;
        } finally {
            lock.unlock();
        }
    }

    /** UTF-8 length without encoding: surrogates count 2 each, so a pair counts 4. */
    static long utf8Length(String s) {
        long n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            n += c < 0x80 ? 1 : c < 0x800 || Character.isSurrogate(c) ? 2 : 3;
        }
        return n;
    }
}
