package io.mooncake4j.spi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Proxy;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;

class RateLimitedLogTest {
    /** Every warn(String, Object...) call: the format then the arguments. */
    private final List<Object[]> lines = new ArrayList<>();

    private final Logger logger =
            (Logger)
                    Proxy.newProxyInstance(
                            Logger.class.getClassLoader(),
                            new Class<?>[] {Logger.class},
                            (proxy, method, args) -> {
                                if (method.getName().equals("warn")
                                        && args.length == 2
                                        && args[1] instanceof Object[]) {
                                    Object[] a = (Object[]) args[1];
                                    Object[] line = new Object[a.length + 1];
                                    line[0] = args[0];
                                    System.arraycopy(a, 0, line, 1, a.length);
                                    lines.add(line);
                                }
                                return method.getReturnType() == boolean.class ? true : null;
                            });

    @Test
    void shouldLogOneLinePerKeyPerInterval() {
        RateLimitedLog log = new RateLimitedLog(logger, Duration.ofHours(1));
        for (int i = 0; i < 100; i++) {
            log.warn("a", "refused {}", i);
            log.warn("b", "other {}", i);
        }
        assertEquals(2, lines.size());
        assertEquals(0, lines.get(0)[1]);
        assertEquals("other {}", lines.get(1)[0]);
        assertEquals(198, log.suppressed());
    }

    @Test
    void shouldSayHowManyWereSuppressedAndKeepTheThrowableLast() throws Exception {
        RateLimitedLog log = new RateLimitedLog(logger, Duration.ofMillis(500)); // wide: a loaded host may pause us
        IllegalStateException bug = new IllegalStateException("bug");
        log.warn("k", "failed {}", 1, bug);
        log.warn("k", "failed {}", 2, bug);
        log.warn("k", "failed {}", 3, bug);
        Thread.sleep(600);
        log.warn("k", "failed {}", 4, bug);
        assertEquals(2, lines.size());
        Object[] last = lines.get(1);
        assertTrue(((String) last[0]).endsWith("({} similar lines suppressed before this one)"));
        assertEquals(4, last[1]);
        assertEquals(2L, last[2]);
        assertSame(bug, last[3]);
        assertEquals(2, log.suppressed());
    }
}
