package io.mooncake4j.samples.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class SizesTest {
    @Test
    void shouldReadPlainBytesAsMooncakeFlagsDo() {
        assertEquals(65536, Sizes.parse("65536"));
        assertEquals(1073741824L, Sizes.parse("1073741824"));
        assertEquals(512, Sizes.parse("512B"));
    }

    @Test
    void shouldReadBinarySuffixesAsPowersOf1024() {
        assertEquals(64 << 10, Sizes.parse("64K"));
        assertEquals(64 << 10, Sizes.parse("64k"));
        assertEquals(64 << 10, Sizes.parse("64KiB"));
        assertEquals(4 << 20, Sizes.parse("4M"));
        assertEquals(4 << 20, Sizes.parse("4MiB"));
        assertEquals(1L << 30, Sizes.parse("1G"));
        assertEquals(1L << 40, Sizes.parse("1T"));
    }

    @Test
    void shouldReadDecimalSuffixesAsPowersOf1000() {
        assertEquals(4000, Sizes.parse("4KB"));
        assertEquals(1_000_000_000L, Sizes.parse("1GB"));
        assertEquals(2_000_000, Sizes.parse("2mb"));
    }

    @Test
    void shouldRejectWhatIsNotASize() {
        for (String bad : new String[] {"", "abc", "64X", "-1", "1.5M", "0x10", "99999999999T"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Sizes.parse(bad), bad);
            assertTrue(e.getMessage().contains(bad), e.getMessage());
        }
    }

    @Test
    void shouldFormatSizesForPeople() {
        assertEquals("4 KiB", Sizes.format(4096));
        assertEquals("1 GiB", Sizes.format(1L << 30));
        assertEquals("100 B", Sizes.format(100));
        assertEquals("4K", Sizes.shortForm(4096));
        assertEquals("4M", Sizes.shortForm(4 << 20));
        assertEquals("1000", Sizes.shortForm(1000));
    }
}
