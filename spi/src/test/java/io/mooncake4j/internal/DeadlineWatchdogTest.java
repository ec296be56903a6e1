package io.mooncake4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class DeadlineWatchdogTest {
    @Test
    @Timeout(10)
    void shouldKeepExpiringWorkAfterExpireThrowsAnError() throws Exception {
        List<String> expired = new CopyOnWriteArrayList<>();
        CountDownLatch second = new CountDownLatch(1);
        try (DeadlineWatchdog<String> dog = new DeadlineWatchdog<>("test-deadline", 1_000_000L, w -> 0L, w -> {
            if (expired.add(w) && w.equals("first")) {
                throw new OutOfMemoryError("crafted");
            }
            second.countDown();
        })) {
            int slot = dog.add("first");
            assertTrue(waitFor(() -> !expired.isEmpty()), "first expired");
            dog.remove(slot, "first");
            int slot2 = dog.add("second");
            assertTrue(second.await(5, TimeUnit.SECONDS), "the watchdog thread died");
            dog.remove(slot2, "second");
            assertEquals("first", expired.get(0));
        }
    }

    private static boolean waitFor(java.util.function.BooleanSupplier c) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!c.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(1);
        }
        return true;
    }
}
