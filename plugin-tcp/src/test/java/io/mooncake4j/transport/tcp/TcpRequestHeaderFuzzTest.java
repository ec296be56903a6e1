package io.mooncake4j.transport.tcp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.spi.LocalMemory;
import io.mooncake4j.spi.PinnedRegion;
import io.mooncake4j.testkit.InMemoryTransportProvider;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Coverage-guided fuzzing (Jazzer) of the TCP request header a peer sends to the data port ({@link
 * TcpWire}: {@code u64 size | u64 addr | u8 opcode | 7 zero bytes}) and of the bounds check every
 * request passes before memory is touched: {@link LocalMemory#pin} of a real {@link TransferEngine}
 * with a TCP transport. The input's first 24 bytes are the header; the committed seeds are under
 * {@code src/test/resources/.../TcpRequestHeaderFuzzTestInputs/}.
 *
 * <p>The regions are registered at fixed addresses (never dereferenced: pin only compares), so an
 * input means the same on every run and the fuzzer can aim at their edges: two adjacent regions,
 * one after a gap, and one just below the top of the address space.
 */
class TcpRequestHeaderFuzzTest {
    private static final long BASE = 0x0000_7F00_0000_0000L;
    private static final List<MemoryRegion> REGIONS =
            List.of(
                    new MemoryRegion(BASE, 4096, MemoryLocation.CPU),
                    new MemoryRegion(BASE + 4096, 8192, MemoryLocation.CPU),
                    new MemoryRegion(BASE + 5 * 4096, 4096, MemoryLocation.CPU),
                    new MemoryRegion(-2 * 4096L, 4096, MemoryLocation.CPU));

    private static TransferEngine engine;
    private static LocalMemory memory;

    @BeforeAll
    static void startEngine() {
        // The engine installs spi's test transport beside TCP and gives both the same context: its
        // factory hands over the LocalMemory that the TCP data server checks each request against.
        AtomicReference<LocalMemory> seen = new AtomicReference<>();
        InMemoryTransportProvider.override =
                context -> {
                    seen.set(context.localMemory());
                    InMemoryTransportProvider.override = null;
                    return new InMemoryTransportProvider().create(context);
                };
        try {
            engine =
                    TransferEngine.create(
                            EngineConfig.builder()
                                    .environment(Map.of())
                                    .protocol("tcp")
                                    .set(
                                            EngineConfig.INSTALLED_TRANSPORTS,
                                            InMemoryTransportProvider.PROTOCOL)
                                    .localHostname("127.0.0.1")
                                    .rpcPortRange(0, 0)
                                    .build());
        } finally {
            InMemoryTransportProvider.override = null;
        }
        assertEquals("tcp", engine.protocol());
        memory = seen.get();
        assertNotNull(memory, "the test transport was not installed beside TCP");
        engine.registerMemory(REGIONS);
    }

    @AfterAll
    static void closeEngine() {
        if (engine != null) {
            engine.close();
        }
    }

    /**
     * A header decodes to the same fields whatever the buffer's byte order and encodes back to its
     * own bytes; a range the engine pins lies wholly inside one registered region, and a range
     * inside one is pinned.
     */
    @Timeout(10) // per input; Jazzer passes it to libFuzzer as -timeout when fuzzing
    @FuzzTest(maxDuration = "30s")
    void shouldPinOnlyInsideOneRegionWhenHeaderIsArbitrary(byte[] input) {
        byte[] header = Arrays.copyOf(input, TcpWire.HEADER_BYTES);
        ByteBuffer le = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer be = ByteBuffer.wrap(header).order(ByteOrder.BIG_ENDIAN);
        long size = TcpWire.headerSize(le, 0);
        long addr = TcpWire.headerAddress(le, 0);
        int raw = TcpWire.headerOpcode(le, 0);
        assertEquals(le.getLong(0), size);
        assertEquals(le.getLong(8), addr);
        assertEquals(size, TcpWire.headerSize(be, 0));
        assertEquals(addr, TcpWire.headerAddress(be, 0));
        assertEquals(raw, TcpWire.headerOpcode(be, 0));
        assertEquals(raw, TcpWire.baseOpcode(raw) | (TcpWire.isV2(raw) ? TcpWire.FLAG_V2 : 0));

        ByteBuffer out = ByteBuffer.allocate(TcpWire.HEADER_BYTES).order(ByteOrder.BIG_ENDIAN);
        TcpWire.putHeader(out, 0, size, addr, TcpWire.baseOpcode(raw), TcpWire.isV2(raw));
        byte[] expected = Arrays.copyOf(header, TcpWire.HEADER_BYTES);
        Arrays.fill(expected, 17, TcpWire.HEADER_BYTES, (byte) 0); // padding is written as zeros
        assertArrayEquals(expected, out.array());

        checkPin(addr, size);
    }

    private static void checkPin(long addr, long size) {
        MemoryRegion holder = null;
        for (MemoryRegion r : REGIONS) {
            if (r.contains(addr, size)) {
                holder = r;
            }
        }
        PinnedRegion pin = memory.pin(addr, size);
        if (pin == null) {
            assertNull(holder, () -> "refused a range inside " + range(addr, size));
            return;
        }
        try {
            MemoryRegion r = pin.region();
            assertNotNull(holder, () -> "pinned " + r + " for " + range(addr, size));
            assertEquals(holder, r);
            assertTrue(size > 0, () -> range(addr, size));
            assertTrue(Long.compareUnsigned(addr, r.address()) >= 0, () -> range(addr, size));
            assertTrue(Long.compareUnsigned(addr + size, addr) > 0, () -> range(addr, size));
            assertTrue(Long.compareUnsigned(addr + size, r.end()) <= 0, () -> range(addr, size));
        } finally {
            pin.unpin();
        }
    }

    private static String range(long addr, long size) {
        return "[0x" + Long.toHexString(addr) + ", +" + Long.toUnsignedString(size) + ")";
    }
}
