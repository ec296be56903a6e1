package io.mooncake4j.transport.efa;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.Opcode;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.SegmentDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.RegionRegistration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Requests contiguous on both sides become one operation up to the slice; larger ones are split. */
@Tag("integration")
@Timeout(60)
class EfaSlicingTest {
    private static final long LEN = 8L << 20;

    /** Writes the requests (offsets and lengths in one 8 MiB region each side); returns operations. */
    private static long write(long[] offsets, long[] lengths) throws Exception {
        long src = NativeMemory.map(LEN);
        long dst = NativeMemory.map(LEN);
        MemoryRegion s = new MemoryRegion(src, LEN, MemoryLocation.CPU);
        MemoryRegion d = new MemoryRegion(dst, LEN, MemoryLocation.CPU);
        try (EfaPair pair = new EfaPair(EfaSettings.PROVIDER, "tcp;ofi_rxm", EngineConfig.DEVICE, "lo",
                EngineConfig.SLICE_SIZE, Long.toString(1 << 20))) {
            RegionRegistration sr = pair.a.registerRegion(s);
            RegionRegistration dr = pair.b.registerRegion(d);
            SegmentDescriptor peer = EfaPair.describe("127.0.0.1:2", pair.b, d, dr);
            fillRandom(src, LEN, 5);
            long[] local = new long[offsets.length];
            long[] remote = new long[offsets.length];
            for (int i = 0; i < offsets.length; i++) {
                local[i] = src + offsets[i];
                remote[i] = dst + offsets[i];
            }
            EfaPair.Work w = new EfaPair.Work(Opcode.WRITE, local, remote, lengths, sr, peer.bufferContaining(dst, 1));
            pair.a.submit(peer, w);
            assertTrue(w.await(), "every part reported");
            for (int i = 0; i < offsets.length; i++) {
                assertEquals(TransferStatus.COMPLETED, w.status[i], w.reason[i]);
                assertSameBytes(local[i], remote[i], lengths[i], "request " + i);
            }
            long ops = pair.a.counters().get("lo.operations");
            pair.a.unregisterRegion(s, sr);
            pair.b.unregisterRegion(d, dr);
            return ops;
        } finally {
            NativeMemory.unmap(src, LEN);
            NativeMemory.unmap(dst, LEN);
        }
    }

    @Test
    void shouldMergeContiguousRequestsIntoOneOperationPerSlice() throws Exception {
        int n = 32;
        long[] offsets = new long[n];
        long[] lengths = new long[n];
        for (int i = 0; i < n; i++) {
            offsets[i] = (long) i * (64 << 10);
            lengths[i] = 64 << 10;
        }
        // 32 x 64 KiB back to back = 2 MiB = two 1 MiB operations
        assertEquals(2, write(offsets, lengths));
    }

    @Test
    void shouldSplitARequestLargerThanTheSliceAndNotMergeAcrossAGap() throws Exception {
        // 3 MiB + 5 bytes = 4 parts; then two 4 KiB requests with a gap between them = 2 operations
        long[] offsets = {0, 4L << 20, (4L << 20) + 8192};
        long[] lengths = {(3L << 20) + 5, 4096, 4096};
        assertEquals(6, write(offsets, lengths));
    }

    /**
     * A request the engine ended (batch closed) before the progress thread issued it, while the
     * submission is not yet marked aborted (the engine ends the requests first): it is skipped, and
     * its part still reported, else its memory stays pinned and cannot be unregistered (seen as an
     * intermittent "transfers still use it" on shm).
     */
    @Test
    void shouldReportRequestsEndedBeforeTheyWereIssued() throws Exception {
        long len = 1 << 20;
        long src = NativeMemory.map(len);
        long dst = NativeMemory.map(len);
        MemoryRegion s = new MemoryRegion(src, len, MemoryLocation.CPU);
        MemoryRegion d = new MemoryRegion(dst, len, MemoryLocation.CPU);
        try (EfaPair pair = new EfaPair(EfaSettings.PROVIDER, "tcp;ofi_rxm", EngineConfig.DEVICE, "lo")) {
            RegionRegistration sr = pair.a.registerRegion(s);
            RegionRegistration dr = pair.b.registerRegion(d);
            SegmentDescriptor peer = EfaPair.describe("127.0.0.1:2", pair.b, d, dr);
            int n = 8;
            long[] local = new long[n];
            long[] remote = new long[n];
            long[] lengths = new long[n];
            for (int i = 0; i < n; i++) {
                local[i] = src + i * 8192L;
                remote[i] = dst + i * 8192L;
                lengths[i] = 4096;
            }
            EfaPair.Work w = new EfaPair.Work(Opcode.READ, local, remote, lengths, sr, peer.bufferContaining(dst, 1));
            for (int i = 0; i < n; i += 2) {
                w.endByEngine(i);
            }
            pair.a.submit(peer, w);
            assertTrue(w.await(), w.unreported() + " of " + n + " requests never reported");
            for (int i = 1; i < n; i += 2) {
                assertEquals(TransferStatus.COMPLETED, w.status[i], w.reason[i]);
            }
            pair.a.unregisterRegion(s, sr);
            pair.b.unregisterRegion(d, dr);
        } finally {
            NativeMemory.unmap(src, len);
            NativeMemory.unmap(dst, len);
        }
    }
}
