package io.mooncake4j.internal.handshake;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import io.mooncake4j.Notification;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class NotificationInboxTest {
    private static final InetSocketAddress PEER = new InetSocketAddress("127.0.0.1", 15001);

    private static JsonObject offer(NotificationInbox inbox, String text) {
        return inbox.accept(new HandshakeMessages.Notify("a:1", text), PEER, null);
    }

    private static String replyText(JsonObject reply) {
        return reply.get(HandshakeMessages.NOTIFY_MSG).getAsString();
    }

    @Test
    void shouldRefuseTheNewestWhenTheByteBoundIsReached() {
        NotificationInbox inbox = new NotificationInbox(1000, 100, 100);
        String text = "x".repeat(27); // 27 + 3 ("a:1") = 30 bytes each
        for (int i = 0; i < 3; i++) {
            assertEquals(HandshakeMessages.notifyOk(), offer(inbox, text + i));
        }
        JsonObject refused = offer(inbox, text + "3");
        assertFalse(HandshakeMessages.isNotifyOk(refused));
        assertTrue(replyText(refused).contains("MC_NOTIFY_MAX_PENDING_BYTES=100"), replyText(refused));
        assertEquals(1, inbox.refused());
        assertEquals(93, inbox.pendingBytes());
        assertEquals(
                List.of(new Notification("a:1", text + 0), new Notification("a:1", text + 1),
                        new Notification("a:1", text + 2)),
                inbox.poll());
        assertEquals(0, inbox.pendingBytes());
        assertEquals(HandshakeMessages.notifyOk(), offer(inbox, text + "4")); // room again
    }

    @Test
    void shouldRefuseWhenTheCountBoundIsReached() {
        NotificationInbox inbox = new NotificationInbox(2, 1 << 20, 100);
        assertTrue(HandshakeMessages.isNotifyOk(offer(inbox, "1")));
        assertTrue(HandshakeMessages.isNotifyOk(offer(inbox, "2")));
        assertTrue(replyText(offer(inbox, "3")).contains("MC_NOTIFY_MAX_PENDING=2"));
        assertEquals(2, inbox.pending());
        assertEquals(1, inbox.refused());
    }

    @Test
    void shouldRefuseAMessageOverTheSizeLimitCountingUtf8Bytes() {
        NotificationInbox inbox = new NotificationInbox(10, 1 << 20, 6);
        assertTrue(HandshakeMessages.isNotifyOk(offer(inbox, "\u00e9\u00e9\u00e9"))); // 6 bytes
        JsonObject refused = offer(inbox, "\u20ac\u20ac\u20ac"); // 3 chars, 9 bytes
        assertTrue(replyText(refused).contains("9 bytes"), replyText(refused));
        assertTrue(replyText(refused).contains("MC_NOTIFY_MAX_MESSAGE_SIZE"));
        assertEquals(4, NotificationInbox.utf8Length("\ud83d\ude00")); // one emoji, a pair
        assertEquals(1, inbox.pending());
    }

    @Test
    @Timeout(10)
    void shouldWakeAWaitingPollerAndTimeOutWhenNothingComes() throws Exception {
        NotificationInbox inbox = new NotificationInbox(10, 1 << 20, 100);
        assertEquals(List.of(), inbox.poll(Duration.ofMillis(20)));
        CompletableFuture<List<Notification>> waiting =
                CompletableFuture.supplyAsync(
                        () -> {
                            try {
                                return inbox.poll(Duration.ofSeconds(5));
                            } catch (InterruptedException e) {
                                throw new IllegalStateException(e);
                            }
                        });
        Thread.sleep(50);
        offer(inbox, "kv ready");
        assertEquals(List.of(new Notification("a:1", "kv ready")), waiting.get(5, TimeUnit.SECONDS));
    }
}
