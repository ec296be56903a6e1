package io.mooncake4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.RegionAccess;
import java.util.List;
import org.junit.jupiter.api.Test;

class RoundPinsTest {
    private final MemoryRegistry registry = new MemoryRegistry();

    private RegisteredRegion register(long address, long length) {
        registry.register(List.of(new MemoryRegion(address, length, MemoryLocation.CPU)), RegionAccess.REMOTE, InstalledTransports.of());
        RegisteredRegion r = registry.pinRegion(address, 1);
        r.unpin();
        return r;
    }

    private static void assertPins(int expected, RegisteredRegion... regions) {
        for (RegisteredRegion r : regions) {
            assertEquals(expected, r.pins(), r.region().toString());
        }
    }

    @Test
    void shouldPinEachRegionOnceForTheRoundWhateverTheNumberOfRequests() {
        RegisteredRegion a = register(0x10000, 0x10000);
        RegisteredRegion b = register(0x40000, 0x10000);
        RoundPins pins = new RoundPins(registry);
        for (int i = 0; i < 128; i++) {
            assertSame(a, pins.region(pins.pin(0x10000 + i * 0x100L, 0x100)));
            assertSame(b, pins.region(pins.pin(0x40000 + i * 0x100L, 0x100)));
        }
        assertPins(1, a, b);
        pins.releaseAfter(0);
        assertPins(0, a, b);
    }

    @Test
    void shouldRefuseARangeOutsideOrAcrossRegionsWithoutPinning() {
        RegisteredRegion a = register(0x10000, 0x10000);
        register(0x20000, 0x10000);
        RoundPins pins = new RoundPins(registry);
        assertSame(a, pins.region(pins.pin(0x10000, 0x10)));
        assertEquals(-1, pins.pin(0x1ff00, 0x200), "across two adjacent regions");
        assertEquals(-1, pins.pin(0x8000, 0x10), "below every region");
        assertEquals(-1, pins.pin(0x30000, 0x10), "past every region");
        assertEquals(-1, pins.pin(0x1ffff, 2), "past the end of a held region");
        pins.releaseAfter(0);
        assertEquals(0, a.pins());
    }

    @Test
    void shouldHoldTheRegionsUntilTheLastDeviceCopyReports() {
        RegisteredRegion a = register(0x10000, 0x10000);
        RegisteredRegion b = register(0x40000, 0x10000);
        RoundPins pins = new RoundPins(registry);
        pins.pin(0x10000, 0x1000);
        pins.pin(0x40000, 0x1000);
        pins.releaseAfter(2);
        assertPins(1, a, b);
        pins.copyReported(); // one copy is still on the device
        assertPins(1, a, b);
        pins.copyReported();
        assertPins(0, a, b);
    }

    @Test
    void shouldKeepARegionPinnedForTheRoundOnceItsFirstRequestPinnedIt() {
        RegisteredRegion a = register(0x10000, 0x10000);
        register(0x40000, 0x10000);
        RoundPins pins = new RoundPins(registry);
        assertSame(a, pins.region(pins.pin(0x10000, 0x100)));
        registry.remove(0x10000); // unregistration now waits for the round's pin
        registry.remove(0x40000);
        assertSame(a, pins.region(pins.pin(0x10100, 0x100)), "as if pinned with the round's first request");
        assertEquals(-1, pins.pin(0x40000, 0x100), "removed before the round pinned it");
        pins.releaseAfter(0);
        assertEquals(0, a.pins());
    }

    @Test
    void shouldHoldMoreRegionsThanItsInitialRoom() {
        RoundPins pins = new RoundPins(registry);
        RegisteredRegion[] regions = new RegisteredRegion[9];
        for (int k = 0; k < regions.length; k++) {
            regions[k] = register(0x100000L * (k + 1), 0x1000);
        }
        for (int round = 0; round < 3; round++) {
            for (int k = 0; k < regions.length; k++) {
                assertSame(regions[k], pins.region(pins.pin(0x100000L * (k + 1) + 8 * round, 8)));
            }
        }
        assertPins(1, regions);
        pins.releaseAfter(1);
        pins.copyReported();
        assertPins(0, regions);
    }

    @Test
    void shouldGiveEachHeldRegionsLocationWhenTheRoundMixesGpuAndHostRegions() {
        registry.register(List.of(new MemoryRegion(0x10000, 0x10000, MemoryLocation.cuda(1))), RegionAccess.REMOTE, InstalledTransports.of());
        register(0x40000, 0x10000);
        RoundPins pins = new RoundPins(registry);
        int host = pins.pin(0x40000, 0x100);
        int gpu = pins.pin(0x10000, 0x100);
        assertEquals(gpu, pins.pin(0x1ff00, 0x100), "a later request in a held region gets its slot");
        assertEquals(host, pins.pin(0x4ff00, 0x100));
        assertEquals(MemoryLocation.cuda(1), pins.location(gpu));
        assertEquals(MemoryLocation.CPU, pins.location(host));
        assertEquals(true, pins.isCuda(gpu));
        assertEquals(false, pins.isCuda(host));
        pins.releaseAfter(0);
        assertEquals(0, pins.region(gpu).pins());
    }
}
