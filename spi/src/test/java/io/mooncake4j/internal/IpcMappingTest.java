package io.mooncake4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.spi.DeviceIpcMapping;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** A peer buffer's mapping is unmapped once, by the last of the cache and the copies through it. */
class IpcMappingTest {
    private final AtomicInteger unmapped = new AtomicInteger();
    private final AtomicInteger counted = new AtomicInteger();

    private IpcMapping mapping(boolean failing) {
        DeviceIpcMapping m = new DeviceIpcMapping() {
            @Override
            public long address() {
                return 0x7000_0000L;
            }

            @Override
            public long length() {
                return 4096;
            }

            @Override
            public MemoryLocation location() {
                return MemoryLocation.cuda(0);
            }

            @Override
            public void close() {
                unmapped.incrementAndGet();
                if (failing) {
                    throw new IllegalStateException("cuIpcCloseMemHandle failed (test)");
                }
            }
        };
        return new IpcMapping(m, 0x1000_0000L, x -> counted.incrementAndGet());
    }

    @Test
    void shouldUnmapOnlyWhenTheLastCopyEndsAfterItWasRetired() {
        IpcMapping m = mapping(false);
        assertEquals(0x7000_0010L, m.localAddress(0x1000_0010L), "the peer's address translated into the mapping");
        assertTrue(m.tryPin());
        assertTrue(m.tryPin());
        m.retire();
        m.retire(); // the cache's reference is dropped once
        assertEquals(0, unmapped.get(), "copies still hold it");
        m.unpin();
        assertEquals(0, unmapped.get());
        m.unpin();
        assertEquals(1, unmapped.get());
        assertEquals(1, counted.get());
        assertFalse(m.tryPin(), "a released mapping is never pinned again");
    }

    @Test
    void shouldCountAndSwallowAFailedUnmap() {
        IpcMapping m = mapping(true);
        m.retire(); // would run on a copier's thread or inside a submit: must not throw
        assertEquals(1, unmapped.get());
        assertEquals(1, counted.get());
    }
}
