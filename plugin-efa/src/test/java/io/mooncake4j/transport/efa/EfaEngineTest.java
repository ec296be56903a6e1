package io.mooncake4j.transport.efa;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.nativeio.fabric.FabricFaults;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Mooncake's EFA test suite (install, loopback write, write then read with a data check, a batch of
 * 16 writes, 20 batches of 8, warmup, batch register/unregister, 128 MiB as 64 x 1 MiB writes,
 * repeated openSegment), two engines in one JVM on libfabric's software providers, every byte
 * checked; plus more threads x batch than the in-flight cap.
 */
@Tag("integration")
@Timeout(120)
class EfaEngineTest {
    static final Duration DEADLINE = Duration.ofSeconds(20);

    /** An efa engine on {@code provider} (lo for tcp) with {@code extra} settings. */
    static TransferEngine engine(String provider, String... extra) {
        EngineConfig.Builder b = EngineConfig.builder()
                .environment(Map.of())
                .protocol("efa")
                .localHostname("127.0.0.1")
                .rpcPortRange(0, 0)
                .transferTimeout(DEADLINE)
                .set(EfaSettings.PROVIDER, provider)
                .set(EngineConfig.DEVICE, provider.startsWith("tcp") ? "lo" : "all");
        for (int i = 0; i < extra.length; i += 2) {
            b.set(extra[i], extra[i + 1]);
        }
        return TransferEngine.create(b.build());
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp;ofi_rxm", "shm"})
    void shouldPublishDevicesAndOneKeyPerDeviceWhenInstalled(String provider) {
        try (TransferEngine e = engine(provider); HostMemory m = e.allocate(1 << 20)) {
            assertEquals("efa", e.protocol());
            var d = e.localDescriptor();
            assertEquals("efa", d.protocol());
            JsonArray devices = d.field("devices").getAsJsonArray();
            assertEquals(1, devices.size());
            assertTrue(devices.get(0).getAsJsonObject().get("gid").getAsString().length() > 0);
            assertTrue(d.field("priority_matrix").getAsJsonObject().has("cpu:0"));
            BufferDescriptor b = d.bufferContaining(m.address(), 1);
            assertEquals(1, b.rkeys().length);
            assertEquals(1, b.lkeys().length);
        }
    }

    @Test
    void shouldNameTheMissingNicWhenMooncakeDeviceNamesOneThatDoesNotExist() {
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> engine("tcp;ofi_rxm", EngineConfig.DEVICE, "lo,nosuchnic0").close());
        assertTrue(e.getMessage().contains("nosuchnic0") && e.getMessage().contains("MOONCAKE_DEVICE"), e.getMessage());
    }

    /**
     * A peer whose connection never drains (rxm answers EAGAIN for ever while it keeps reconnecting
     * to a dead peer; here the fault seam): the requests end TIMEOUT at their deadline, and their
     * memory is released at once, because operations the provider never accepted are dropped, so the
     * memory can be unregistered and the NIC serves the next transfer.
     */
    @Test
    void shouldReleaseMemoryOfOperationsTheProviderNeverAcceptedWhenTheyTimeOut() throws Exception {
        long len = 1 << 20;
        long src = NativeMemory.map(len);
        try (TransferEngine a = engine("tcp;ofi_rxm", EngineConfig.TRANSFER_TIMEOUT, "1");
                TransferEngine t = engine("tcp;ofi_rxm");
                HostMemory other = a.allocate(len);
                HostMemory dst = t.allocate(len)) {
            a.registerMemory(src, len, "cpu:0");
            Segment seg = a.openSegment(t.localSegmentName());
            fillRandom(src, len, 31);
            a.write(seg, src, dst.address(), len);
            FabricFaults.refusePosts();
            TransferBatch b = a.newBatch(4);
            for (int i = 0; i < 4; i++) {
                b.write(seg, src + i * (len / 4), dst.address() + i * (len / 4), len / 4);
            }
            assertTrue(b.submit().await(Duration.ofSeconds(10)), "ends at its deadline");
            for (int i = 0; i < 4; i++) {
                assertEquals(TransferStatus.TIMEOUT, b.status(i));
            }
            // throws when the transport still holds a part after the drain time (the deadline)
            a.unregisterMemory(src);
            FabricFaults.clear();
            fillRandom(other.address(), len, 32);
            a.write(seg, other.address(), dst.address(), len);
            assertSameBytes(other.address(), dst.address(), len, "the next transfer");
        } finally {
            FabricFaults.clear();
            NativeMemory.unmap(src, len);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp;ofi_rxm", "shm"})
    void shouldWriteThenReadBackWhenLoopbackBetweenTwoEngines(String provider) {
        try (TransferEngine a = engine(provider);
                TransferEngine t = engine(provider);
                HostMemory src = a.allocate(1 << 20);
                HostMemory back = a.allocate(1 << 20);
                HostMemory dst = t.allocate(1 << 20)) {
            Segment seg = a.openSegment(t.localSegmentName());
            fillRandom(src.address(), 1 << 20, 11);
            a.write(seg, src.address(), dst.address(), 1 << 20);
            assertSameBytes(src.address(), dst.address(), 1 << 20, "write");
            a.read(seg, back.address(), dst.address(), 1 << 20);
            assertSameBytes(src.address(), back.address(), 1 << 20, "read back");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp;ofi_rxm", "shm"})
    void shouldCompleteABatchOf16And20BatchesOf8Writes(String provider) {
        int block = 64 << 10;
        try (TransferEngine a = engine(provider);
                TransferEngine t = engine(provider);
                HostMemory src = a.allocate(16L * block);
                HostMemory dst = t.allocate(16L * block)) {
            Segment seg = a.openSegment(t.localSegmentName());
            fillRandom(src.address(), 16L * block, 3);
            TransferBatch b = a.newBatch(16);
            for (int i = 0; i < 16; i++) {
                // every other block: not contiguous, so 16 operations
                long off = (long) ((i * 7) % 16) * block;
                b.write(seg, src.address() + off, dst.address() + off, block);
            }
            assertTrue(b.submit().join().isAllCompleted(), "batch of 16");
            assertSameBytes(src.address(), dst.address(), 16L * block, "batch of 16");
            for (int round = 0; round < 20; round++) {
                fillRandom(src.address(), 8L * block, 100 + round);
                TransferBatch r = a.newBatch(8);
                for (int i = 0; i < 8; i++) {
                    r.write(seg, src.address() + (long) i * block, dst.address() + (long) i * block, block);
                }
                assertTrue(r.submit().join().isAllCompleted(), "batch " + round + " of 8");
                assertSameBytes(src.address(), dst.address(), 8L * block, "batch " + round);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp;ofi_rxm", "shm"})
    void shouldMove128MiBAs64WritesOf1MiB(String provider) {
        long mib = 1 << 20;
        try (TransferEngine a = engine(provider);
                TransferEngine t = engine(provider);
                HostMemory src = a.allocate(128 * mib);
                HostMemory dst = t.allocate(128 * mib)) {
            Segment seg = a.openSegment(t.localSegmentName());
            fillRandom(src.address(), 128 * mib, 7);
            for (int half = 0; half < 2; half++) {
                TransferBatch b = a.newBatch(64);
                for (int i = 0; i < 64; i++) {
                    // reversed order: neighbours are not contiguous in submission order
                    long off = (half * 64L + 63 - i) * mib;
                    b.write(seg, src.address() + off, dst.address() + off, mib);
                }
                assertTrue(b.submit().join().isAllCompleted(), "64 x 1 MiB");
            }
            assertSameBytes(src.address(), dst.address(), 128 * mib, "128 MiB");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp;ofi_rxm", "shm"})
    void shouldWarmUpIdempotentlyAndFailForAnUnknownSegment(String provider) {
        try (TransferEngine a = engine(provider);
                TransferEngine t = engine(provider);
                HostMemory src = a.allocate(4096);
                HostMemory dst = t.allocate(4096)) {
            a.warmupSegment(t.localSegmentName());
            a.warmupSegment(t.localSegmentName());
            a.warmupSegment(a.localSegmentName());
            MooncakeException e = assertThrows(MooncakeException.class, () -> a.warmupSegment("127.0.0.1:1"));
            assertTrue(e.code() == ErrorCode.SEGMENT_NOT_FOUND || e.code() == ErrorCode.METADATA, e.toString());
            fillRandom(src.address(), 4096, 5);
            Segment seg = a.openSegment(t.localSegmentName());
            a.write(seg, src.address(), dst.address(), 4096);
            assertSameBytes(src.address(), dst.address(), 4096, "after warmup");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp;ofi_rxm", "shm"})
    void shouldRegisterAndUnregisterABatchOfRegionsAndReopenSegmentsRepeatedly(String provider) {
        int n = 8;
        long len = 1 << 16;
        long base = NativeMemory.map(n * len);
        try (TransferEngine a = engine(provider); TransferEngine t = engine(provider);
                HostMemory src = a.allocate(len)) {
            List<MemoryRegion> regions = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                regions.add(new MemoryRegion(base + i * len, len, MemoryLocation.CPU));
            }
            t.registerMemory(regions);
            for (int i = 0; i < n; i++) {
                assertEquals(1, t.localDescriptor().bufferContaining(base + i * len, len).rkeys().length);
            }
            fillRandom(src.address(), len, 9);
            for (int i = 0; i < 20; i++) {
                Segment seg = a.openSegment(t.localSegmentName());
                a.write(seg, src.address(), base + (i % n) * len, len);
                assertSameBytes(src.address(), base + (i % n) * len, len, "via openSegment " + i);
            }
            t.unregisterMemory(regions);
            assertEquals(null, t.localDescriptor().bufferContaining(base, 1));
            t.registerMemory(regions);
            t.unregisterMemory(regions);
        } finally {
            NativeMemory.unmap(base, n * len);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp;ofi_rxm", "shm"})
    void shouldCompleteEverythingWhenThreadsTimesBatchExceedTheInFlightCap(String provider) throws Exception {
        int threads = 4;
        int batch = 32;
        int block = 4096;
        // 8 operations in flight per NIC: 4 x 32 = 128 requests wait for credit, none may fail
        try (TransferEngine a = engine(provider, EfaSettings.MAX_WR, "8");
                TransferEngine t = engine(provider);
                HostMemory src = a.allocate((long) threads * batch * block * 2);
                HostMemory dst = t.allocate((long) threads * batch * block * 2)) {
            Segment seg = a.openSegment(t.localSegmentName());
            fillRandom(src.address(), (long) threads * batch * block * 2, 21);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> work = new ArrayList<>();
                for (int th = 0; th < threads; th++) {
                    long base = (long) th * batch * block * 2;
                    work.add(pool.submit(() -> {
                        for (int round = 0; round < 5; round++) {
                            TransferBatch b = a.newBatch(batch);
                            for (int i = 0; i < batch; i++) {
                                long off = base + (long) i * block * 2; // gaps: no merging
                                b.write(seg, src.address() + off, dst.address() + off, block);
                            }
                            b.submit().join();
                            for (int i = 0; i < batch; i++) {
                                assertEquals(TransferStatus.COMPLETED, b.status(i), b.failureReason(i));
                            }
                        }
                        return null;
                    }));
                }
                for (Future<?> f : work) {
                    f.get();
                }
            } finally {
                pool.shutdownNow();
            }
            for (int th = 0; th < threads; th++) {
                for (int i = 0; i < batch; i++) {
                    long off = ((long) th * batch * 2 + i * 2L) * block;
                    assertSameBytes(src.address() + off, dst.address() + off, block, "block " + i);
                }
            }
        }
    }
}
