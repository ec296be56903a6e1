package io.mooncake4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;

class RateLimitedLogTest {
    private final Logger log = mock(Logger.class);
    private final AtomicLong now = new AtomicLong(1_000);
    private final RateLimitedLog limited = new RateLimitedLog(log, Duration.ofSeconds(10), now::get);

    @Test
    void shouldLogTheFirstEventAndSuppressTheRestOfTheInterval() {
        assertTrue(limited.warn("refused {} from {}", 1, "peer-a"));
        now.addAndGet(Duration.ofSeconds(9).toNanos());
        assertFalse(limited.warn("refused {} from {}", 2, "peer-b"));
        assertFalse(limited.warn("refused {} from {}", 3, "peer-c"));
        verify(log, times(1)).warn("refused {} from {}", new Object[] {1, "peer-a"});
        verify(log, never()).warn("refused {} from {}", new Object[] {2, "peer-b"});
    }

    @Test
    void shouldSayHowManyWereSuppressedWhenTheNextIntervalLogs() {
        when(log.isWarnEnabled()).thenReturn(true);
        limited.warn("refused {}", "a");
        limited.warn("refused {}", "b");
        limited.warn("refused {}", "c");
        now.addAndGet(Duration.ofSeconds(10).toNanos());
        assertTrue(limited.warn("refused {}", "d"));
        verify(log).warn(
                "refused {} ({} similar events not logged in the last interval)", new Object[] {"d", 2L});
        now.addAndGet(Duration.ofSeconds(10).toNanos());
        assertTrue(limited.warn("refused {}", "e"));
        verify(log).warn("refused {}", new Object[] {"e"});
        verify(log, never()).warn("refused {}", new Object[] {"b"});
    }

    @Test
    void shouldRefuseANonPositiveInterval() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> new RateLimitedLog(log, Duration.ZERO));
        assertEquals("interval must be positive, got PT0S", e.getMessage());
    }
}
