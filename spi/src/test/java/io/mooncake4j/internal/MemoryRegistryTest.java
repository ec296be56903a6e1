package io.mooncake4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.Mockito.inOrder;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

import com.google.gson.JsonObject;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.RegionAccess;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.PinnedRegion;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Transport;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.mockito.InOrder;

class MemoryRegistryTest {
    private final MemoryRegistry registry = new MemoryRegistry();

    private static MemoryRegion region(long address, long length) {
        return new MemoryRegion(address, length, MemoryLocation.CPU);
    }

    private void register(MemoryRegion... regions) {
        registry.register(List.of(regions), RegionAccess.REMOTE, InstalledTransports.of());
    }

    @Test
    void shouldRollBackEveryTransportAndEveryRegionOfTheBatchWhenOneTransportRefuses() {
        Transport first = mock(Transport.class);
        Transport second = mock(Transport.class);
        when(first.protocol()).thenReturn("a");
        when(second.protocol()).thenReturn("b");
        RegionRegistration firstReg = JsonObject::new;
        RegionRegistration secondReg = JsonObject::new;
        when(first.registerRegion(any())).thenReturn(firstReg);
        MemoryRegion ok = region(0x1000, 0x1000);
        MemoryRegion refused = region(0x4000, 0x1000);
        when(second.registerRegion(ok)).thenReturn(secondReg);
        when(second.registerRegion(refused)).thenThrow(new MooncakeException(ErrorCode.REGISTRATION, "fi_mr_reg: nic 2"));
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> registry.register(List.of(ok, refused), RegionAccess.REMOTE, InstalledTransports.of(first, second)));
        assertTrue(e.getMessage().endsWith("fi_mr_reg: nic 2"), "the transport's own error: " + e.getMessage());
        InOrder order = inOrder(first, second);
        order.verify(first).registerRegion(ok);
        order.verify(second).registerRegion(ok);
        order.verify(first).registerRegion(refused);
        order.verify(second).registerRegion(refused);
        order.verify(first).unregisterRegion(refused, firstReg);
        order.verify(second).unregisterRegion(ok, secondReg);
        order.verify(first).unregisterRegion(ok, firstReg);
        verify(second, never()).unregisterRegion(eq(refused), any());
        assertTrue(registry.snapshot().isEmpty(), "nothing stays registered");
        assertNull(registry.pin(0x1000, 1));
    }

    @Test
    void shouldPinOnlyRangesInsideOneRegion() {
        register(region(0x1000, 0x1000), region(0x2000, 0x1000), region(0x10000, 0x100));
        assertNotNull(registry.pin(0x1000, 0x1000));
        assertNotNull(registry.pin(0x1fff, 1));
        assertNull(registry.pin(0x1800, 0x1000), "spanning two adjacent regions");
        assertNull(registry.pin(0x3000, 1), "unregistered");
        assertNull(registry.pin(0x1000, 0), "length 0");
        assertNull(registry.pin(0x10000, -1), "negative length");
        assertNull(registry.pin(0xFFFF_FFFF_FFFF_FFF0L, 0x20), "overflow");
        assertNull(registry.pin(0x100ff, 2), "past the end");
        assertNull(registry.pin(0xfff, 2), "before the start");
    }

    @Test
    void shouldNeverPinALocalOnlyRegionForAPeerButPinItForTheEngineItself() {
        registry.register(List.of(region(0x1000, 0x1000)), RegionAccess.LOCAL_ONLY, InstalledTransports.of());
        register(region(0x2000, 0x1000));
        assertNull(registry.pin(0x1000, 0x10), "a peer's request into a local-only region");
        assertNotNull(registry.pinRegion(0x1000, 0x10));
        assertNotNull(registry.pin(0x2000, 0x10));
        assertNotNull(registry.pinRegion(0x2000, 0x10));
        assertEquals(List.of(false, true), registry.snapshot().stream().map(r -> r.isRemote()).toList());
    }

    @Test
    void shouldRefuseOverlapsAndEmptyRegions() {
        register(region(0x1000, 0x1000));
        MooncakeException e = assertThrows(MooncakeException.class, () -> register(region(0x1800, 0x1000)));
        assertEquals(ErrorCode.REGISTRATION, e.code());
        assertTrue(e.getMessage().contains("overlaps"));
        assertThrows(MooncakeException.class, () -> register(region(0x5000, 0x100), region(0x50ff, 0x10)));
        assertNull(registry.pin(0x5000, 1), "a refused batch registers nothing");
        assertThrows(MooncakeException.class, () -> region(0x1000, 0));
    }

    @Test
    @Timeout(10)
    void shouldWaitForPinsBeforeUnregistering() throws Exception {
        register(region(0x1000, 0x1000));
        PinnedRegion pin = registry.pin(0x1000, 16);
        RegisteredRegion removed = registry.remove(0x1000);
        assertEquals(0x1000, removed.region().address());
        CompletableFuture<Boolean> drained =
                CompletableFuture.supplyAsync(() -> removed.awaitUnpinned(Duration.ofSeconds(5)));
        TimeUnit.MILLISECONDS.sleep(100);
        assertFalse(drained.isDone(), "the drain waits while a transfer uses the region");
        assertNull(registry.pin(0x1000, 16), "no new pins once removal started");
        pin.unpin();
        assertTrue(drained.get(5, TimeUnit.SECONDS));
        assertEquals(0, removed.pins());
    }

    @Test
    void shouldFailUnregisterOfUnknownAddress() {
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> registry.remove(0x1234));
        assertTrue(e.getMessage().contains("registerMemory"));
    }

    @Test
    void shouldReportPinsLeftWhenTheDrainTimesOut() {
        register(region(0x1000, 0x1000));
        registry.pin(0x1000, 1);
        RegisteredRegion removed = registry.remove(0x1000);
        assertFalse(removed.awaitUnpinned(Duration.ofMillis(50)));
        assertEquals(1, removed.pins());
    }
}
