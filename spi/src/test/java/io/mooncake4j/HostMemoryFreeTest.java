package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.Mockito.doAnswer;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.PinnedRegion;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Unregistering and freeing memory that a peer's request still uses: the transport is always told,
 * and memory still pinned after that is never unmapped (issue 7.1). The peer's request is a pin the
 * test takes through the transport's context, as a data server does.
 */
@Timeout(60)
class HostMemoryFreeTest {
    private final Transport transport = mock(Transport.class);
    private final AtomicReference<TransportContext> context = new AtomicReference<>();
    private TransferEngine engine;

    @BeforeEach
    void start() {
        when(transport.protocol()).thenReturn(InMemoryTransportProvider.PROTOCOL);
        when(transport.registerRegion(any())).thenReturn(RegionRegistration.NONE);
        InMemoryTransportProvider.override = c -> {
            context.set(c);
            return transport;
        };
        try {
            engine = TransferEngine.create(TransferEngineTest.config().transferTimeout(Duration.ofMillis(200)).build());
        } finally {
            InMemoryTransportProvider.override = null;
        }
    }

    @AfterEach
    void stop() {
        engine.close();
    }

    @Test
    void shouldFreeTheMemoryOnceTheTransportStopsThePeerRequestHoldingIt() {
        HostMemory mem = engine.allocate(4096);
        PinnedRegion peerRequest = context.get().localMemory().pin(mem.address(), 16);
        doAnswer(inv -> {
            peerRequest.unpin(); // the transport closes the connection; its request lets go
            return null;
        }).when(transport).unregisterRegion(any(), any());
        long leaked = HostMemory.leakedBytes();
        mem.close();
        verify(transport, times(1)).unregisterRegion(eq(mem.region()), any());
        assertEquals(leaked, HostMemory.leakedBytes());
    }

    @Test
    void shouldKeepTheMemoryMappedAndCountItWhenAPeerRequestNeverLetsGo() {
        HostMemory mem = engine.allocate(4096);
        context.get().localMemory().pin(mem.address(), 16); // never released
        long leaked = HostMemory.leakedBytes();
        mem.close();
        verify(transport, times(1)).unregisterRegion(eq(mem.region()), any());
        assertEquals(leaked + 4096, HostMemory.leakedBytes());
        // still mapped: a late write of the peer lands in memory nobody else uses, and does not crash
        NativeMemory.fill(mem.address(), 4096, 0x5A);
        assertEquals(0x5A, NativeMemory.wrap(mem.address(), 16).get(15));
        mem.close(); // idempotent
        assertEquals(leaked + 4096, HostMemory.leakedBytes());
    }

    @Test
    void shouldTellTheTransportAndFailUnregisterWhenAPeerRequestNeverLetsGo() {
        HostMemory mem = engine.allocate(4096);
        context.get().localMemory().pin(mem.address(), 16); // never released
        MooncakeException e = assertThrows(MooncakeException.class, () -> engine.unregisterMemory(mem.address()));
        assertEquals(ErrorCode.REGISTRATION, e.code());
        assertTrue(e.getMessage().contains("do not free it"), e.getMessage());
        verify(transport, times(1)).unregisterRegion(eq(mem.region()), any());
        long leaked = HostMemory.leakedBytes();
        mem.close(); // unregistered already but still in use: kept mapped
        assertEquals(leaked + 4096, HostMemory.leakedBytes());
    }
}
