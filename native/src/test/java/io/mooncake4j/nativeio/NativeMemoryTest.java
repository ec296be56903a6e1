package io.mooncake4j.nativeio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class NativeMemoryTest {
    @Test
    void shouldLoadFromJarResources() {
        assertNull(NativeMemory.unavailabilityCause());
        assertTrue(NativeMemory.isAvailable());
        assertTrue(NativeMemory.pageSize() >= 4096);
    }

    @Test
    void shouldRoundTripAddressAndWrap() {
        ByteBuffer direct = ByteBuffer.allocateDirect(64);
        direct.put(3, (byte) 42);
        long address = NativeMemory.address(direct);
        ByteBuffer view = NativeMemory.wrap(address, 64);
        assertEquals(42, view.get(3));
        view.put(5, (byte) 7);
        assertEquals(7, direct.get(5));
    }

    @Test
    void shouldRefuseHeapBuffer() {
        IllegalArgumentException e =
                assertThrows(
                        IllegalArgumentException.class,
                        () -> NativeMemory.address(ByteBuffer.allocate(8)));
        assertTrue(e.getMessage().contains("allocateDirect"));
    }

    @Test
    void shouldMapAlignedMemoryAndCopy() {
        long size = 3L * NativeMemory.pageSize() + 1;
        long a = NativeMemory.map(size);
        long b = NativeMemory.map(size);
        try {
            assertEquals(0, a % NativeMemory.pageSize());
            NativeMemory.fill(a, size, 0x5A);
            NativeMemory.copy(b, a, size);
            ByteBuffer view = NativeMemory.wrap(b, (int) size);
            for (int i = 0; i < size; i++) {
                assertEquals(0x5A, view.get(i));
            }
        } finally {
            NativeMemory.unmap(a, size);
            NativeMemory.unmap(b, size);
        }
    }

    @Test
    void shouldMapMoreThanTwoGiB() {
        long size = (2L << 30) + NativeMemory.pageSize();
        long a = NativeMemory.map(size);
        try {
            long last = a + size - 8;
            NativeMemory.fill(last, 8, 1);
            assertEquals(1, NativeMemory.wrap(last, 8).get(7));
        } finally {
            NativeMemory.unmap(a, size);
        }
    }

    @Test
    void shouldReportMapFailureWithSystemError() {
        OutOfMemoryError e = assertThrows(OutOfMemoryError.class, () -> NativeMemory.map(1L << 62));
        assertTrue(e.getMessage().contains("mmap"), e.getMessage());
    }
}
