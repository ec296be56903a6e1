package io.mooncake4j.djl.connector;

import io.mooncake4j.Notification;
import io.mooncake4j.TransferEngine;
import java.time.Duration;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Drains one engine's notifications on one daemon thread and hands connector messages to the
 * connector they are addressed to, so several connectors (a prefill and a decode model in one
 * process) can share an engine. It takes every notification of the engine: other code must not
 * call {@link TransferEngine#pollNotifications()} on an engine a connector uses. Ends when its last
 * connector leaves or the engine closes.
 */
final class NotificationRouter implements Runnable {
    private static final Logger LOG = LoggerFactory.getLogger(NotificationRouter.class);
    private static final Map<TransferEngine, NotificationRouter> ROUTERS = new IdentityHashMap<>();
    /** How long one wait for notifications lasts before the router checks whether to stop. */
    private static final Duration WAIT = Duration.ofMillis(100);

    private final TransferEngine engine;
    private final Map<String, KvConnector> connectors = new ConcurrentHashMap<>();
    private final Thread thread;
    private volatile boolean stopped;
    final AtomicLong foreign = new AtomicLong();
    final AtomicLong unroutable = new AtomicLong();

    private NotificationRouter(TransferEngine engine) {
        this.engine = engine;
        this.thread = new Thread(this, "mooncake4j-kv-notify-" + engine.localSegmentName());
        this.thread.setDaemon(true);
    }

    /** Adds a connector to its engine's router, starting the router if needed. */
    static NotificationRouter register(KvConnector c) {
        synchronized (ROUTERS) {
            NotificationRouter r = ROUTERS.get(c.engine());
            if (r == null || r.stopped) {
                r = new NotificationRouter(c.engine());
                ROUTERS.put(c.engine(), r);
                r.connectors.put(c.id(), c);
                r.thread.start();
            } else {
                r.connectors.put(c.id(), c);
            }
            return r;
        }
    }

    /** Removes a connector; the last one out stops the router. */
    void unregister(KvConnector c) {
        synchronized (ROUTERS) {
            connectors.remove(c.id(), c);
            if (connectors.isEmpty()) {
                stopped = true;
                ROUTERS.remove(engine, this);
                thread.interrupt();
            }
        }
    }

    @Override
    public void run() {
        while (!stopped && !engine.isClosed()) {
            List<Notification> batch;
            try {
                batch = engine.pollNotifications(WAIT);
            } catch (InterruptedException e) {
                continue;
            } catch (RuntimeException e) {
                if (!engine.isClosed()) {
                    LOG.warn("polling notifications of {} failed", engine, e);
                }
                continue;
            }
            for (Notification n : batch) {
                KvMessage m = KvMessage.decode(n.message());
                if (m == null) {
                    foreign.incrementAndGet();
                    continue;
                }
                KvConnector c = connectors.get(m.to);
                if (c == null) {
                    unroutable.incrementAndGet();
                    LOG.debug("no connector {} for {}", m.to, m);
                    continue;
                }
                try {
                    c.onMessage(n.sender(), m);
                } catch (RuntimeException e) {
                    LOG.warn("connector {} failed on {}", c.id(), m, e);
                }
            }
        }
        synchronized (ROUTERS) {
            stopped = true;
            ROUTERS.remove(engine, this);
        }
    }
}
