package io.mooncake4j.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class DeviceRangesTest {
    @Test
    void shouldFindTheDeviceWhenAnAddressIsInsideAKnownRange() {
        DeviceRanges ranges = new DeviceRanges();
        ranges.add(0x1000, 0x1000, 0);
        ranges.add(0x8000, 0x100, 1);
        assertEquals(0, ranges.deviceOf(0x1000));
        assertEquals(0, ranges.deviceOf(0x1fff));
        assertEquals(1, ranges.deviceOf(0x80ff));
        assertEquals(DeviceRanges.UNKNOWN, ranges.deviceOf(0x2000));
        assertEquals(DeviceRanges.UNKNOWN, ranges.deviceOf(0x0fff));
        assertEquals(DeviceRanges.UNKNOWN, ranges.deviceOf(0x8100));
    }

    @Test
    void shouldForgetEveryOverlappingRangeWhenARegionIsUnregistered() {
        DeviceRanges ranges = new DeviceRanges();
        ranges.add(0x1000, 0x1000, 0);
        ranges.add(0x3000, 0x1000, 0);
        ranges.add(0x5000, 0x1000, 0);
        ranges.forget(0x1800, 0x2000); // overlaps the first two
        assertEquals(1, ranges.size());
        assertEquals(DeviceRanges.UNKNOWN, ranges.deviceOf(0x1000));
        assertEquals(DeviceRanges.UNKNOWN, ranges.deviceOf(0x3000));
        assertEquals(0, ranges.deviceOf(0x5000));
    }

    @Test
    void shouldReplaceAStaleRangeWhenAnOverlappingOneIsAdded() {
        DeviceRanges ranges = new DeviceRanges();
        ranges.add(0x1000, 0x4000, 0);
        ranges.add(0x2000, 0x1000, 1); // the old allocation was freed, its addresses reused
        assertEquals(1, ranges.size());
        assertEquals(1, ranges.deviceOf(0x2000));
        assertEquals(DeviceRanges.UNKNOWN, ranges.deviceOf(0x1000));
    }
}
