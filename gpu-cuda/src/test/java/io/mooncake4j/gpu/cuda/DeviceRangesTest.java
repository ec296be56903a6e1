package io.mooncake4j.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

class DeviceRangesTest {
    @Test
    void shouldFindTheDeviceWhenAnAddressIsInsideAKnownRange() {
        DeviceRanges ranges = new DeviceRanges();
        ranges.add(0x1000, 0x1000, 0);
        ranges.add(0x8000, 0x100, 1);
        assertEquals(0, ranges.find(0x1000).device());
        assertEquals(0, ranges.find(0x1fff).device());
        assertEquals(1, ranges.find(0x80ff).device());
        assertNull(ranges.find(0x2000));
        assertNull(ranges.find(0x0fff));
        assertNull(ranges.find(0x8100));
    }

    @Test
    void shouldForgetEveryOverlappingRangeWhenARegionIsUnregistered() {
        DeviceRanges ranges = new DeviceRanges();
        ranges.add(0x1000, 0x1000, 0);
        ranges.add(0x3000, 0x1000, 0);
        ranges.add(0x5000, 0x1000, 0);
        ranges.forget(0x1800, 0x2000); // overlaps the first two
        assertEquals(1, ranges.size());
        assertNull(ranges.find(0x1000));
        assertNull(ranges.find(0x3000));
        assertEquals(0, ranges.find(0x5000).device());
    }

    @Test
    void shouldReplaceAStaleRangeWhenAnOverlappingOneIsAdded() {
        DeviceRanges ranges = new DeviceRanges();
        ranges.add(0x1000, 0x4000, 0);
        ranges.add(0x2000, 0x1000, 1); // the old allocation was freed, its addresses reused
        assertEquals(1, ranges.size());
        assertEquals(1, ranges.find(0x2000).device());
        assertNull(ranges.find(0x1000));
    }
}
