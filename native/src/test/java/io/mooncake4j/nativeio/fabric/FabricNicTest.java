package io.mooncake4j.nativeio.fabric;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * The binding on libfabric's software providers, two NICs in one process: registration, address
 * exchange, a window of writes and reads posted in one call each, completions reaped in batches,
 * errors with the provider's text, and the fault seam.
 */
@Timeout(60)
class FabricNicTest {
    private static final long MR_MODES =
            LibFabric.FI_MR_LOCAL
                    | LibFabric.FI_MR_VIRT_ADDR
                    | LibFabric.FI_MR_ALLOCATED
                    | LibFabric.FI_MR_PROV_KEY
                    | LibFabric.FI_MR_ENDPOINT;

    @AfterEach
    void clearFaults() {
        FabricFaults.clear();
    }

    private static FabricNic open(String provider) {
        String node = provider.startsWith("shm") ? null : "127.0.0.1";
        try (FabricInfo.Query q = FabricInfo.Query.run(provider, node, MR_MODES)) {
            return FabricNic.open(q.infos().get(0), 64);
        }
    }

    /** Posts every op, reaping both NICs until all complete (the target must progress too). */
    private static void runWindow(FabricNic a, FabricNic b, RmaOps ops, int count) {
        CompletionSlots done = new CompletionSlots(64);
        int posted = 0;
        int completed = 0;
        long deadline = System.nanoTime() + 20_000_000_000L;
        boolean[] seen = new boolean[count];
        while (completed < count) {
            assertTrue(System.nanoTime() < deadline, "window did not complete");
            if (posted < count) {
                int n = a.post(ops, posted, count - posted);
                posted += n;
                if (posted < count) {
                    assertEquals(-LibFabric.FI_EAGAIN, ops.rc(posted), "post refused");
                }
            }
            int got = a.reap(done, 64);
            assertTrue(got >= 0, "reap: " + got + " " + a.readError(new long[3]));
            for (int i = 0; i < got; i++) {
                int slot = done.slot(i);
                assertTrue(!seen[slot], "slot " + slot + " completed twice");
                seen[slot] = true;
            }
            completed += got;
            b.reap(done, 64);
        }
    }

    /**
     * A reset endpoint (closed and reopened, what unregistering memory under unanswered operations
     * does) asks for its old address (tcp gives it again; shm names every endpoint anew), keeps the
     * domain's registrations and the address vector's entries, and carries the next window; tcp
     * orders writes, shm does not.
     */
    @ParameterizedTest
    @CsvSource({"tcp;ofi_rxm, 9223372036854775807, false", "shm, 0, true"})
    void shouldKeepRegistrationsAndPeersWhenTheEndpointIsReset(String provider, long orderedWriteSize,
            boolean newAddress) {
        int block = 65536;
        int count = 8;
        long len = (long) block * count;
        long src = NativeMemory.map(len);
        long dst = NativeMemory.map(len);
        try (FabricNic a = open(provider);
                FabricNic b = open(provider)) {
            assertEquals(orderedWriteSize, a.info().orderedWriteSize());
            FabricMemoryRegion mrSrc = a.register(src, len, 1, 0, 0);
            FabricMemoryRegion mrDst = b.register(dst, len, 1, 0, 0);
            long peer = a.insertPeer(b.address());
            byte[] before = a.address();
            assertEquals(newAddress, a.resetEndpoint(), "address changed");
            assertEquals(newAddress, java.util.Arrays.mismatch(before, a.address()) >= 0);
            long remoteBase = (a.mrMode() & LibFabric.FI_MR_VIRT_ADDR) != 0 ? dst : 0;
            ByteBuffer s = NativeMemory.wrap(src, (int) len);
            for (int i = 0; i < len; i++) {
                s.put(i, (byte) (i * 13 + 1));
            }
            RmaOps ops = new RmaOps(count);
            for (int i = 0; i < count; i++) {
                ops.set(i, i, RmaOps.DELIVERY_COMPLETE, src + (long) i * block, block, mrSrc.descriptor(),
                        remoteBase + (long) i * block, mrDst.key(), peer);
            }
            runWindow(a, b, ops, count);
            assertEquals(-1, NativeMemory.wrap(src, (int) len).mismatch(NativeMemory.wrap(dst, (int) len)));
            mrSrc.close();
            mrDst.close();
        } finally {
            NativeMemory.unmap(src, len);
            NativeMemory.unmap(dst, len);
        }
    }

    @ParameterizedTest
    @CsvSource({"tcp;ofi_rxm, 65536", "tcp;ofi_rxm, 1048576", "shm, 65536", "shm, 1048576"})
    void shouldWriteAndReadBackAWindowWhenPostedInOneCall(String provider, int block) {
        int count = 16;
        long len = (long) block * count;
        long src = NativeMemory.map(len);
        long dst = NativeMemory.map(len);
        long back = NativeMemory.map(len);
        try (FabricNic a = open(provider);
                FabricNic b = open(provider)) {
            FabricMemoryRegion mrSrc = a.register(src, len, 1, 0, 0);
            FabricMemoryRegion mrBack = a.register(back, len, 2, 0, 0);
            FabricMemoryRegion mrDst = b.register(dst, len, 1, 0, 0);
            long peer = a.insertPeer(b.address());
            boolean virt = (a.mrMode() & LibFabric.FI_MR_VIRT_ADDR) != 0;
            long remoteBase = virt ? dst : 0;
            ByteBuffer s = NativeMemory.wrap(src, (int) len);
            for (int i = 0; i < len; i++) {
                s.put(i, (byte) (i * 7 + 3));
            }
            RmaOps ops = new RmaOps(count);
            for (int i = 0; i < count; i++) {
                int flags = i == count - 1 ? RmaOps.DELIVERY_COMPLETE : 0;
                ops.set(i, i, flags, src + (long) i * block, block, mrSrc.descriptor(),
                        remoteBase + (long) i * block, mrDst.key(), peer);
            }
            runWindow(a, b, ops, count);
            assertEquals(-1, NativeMemory.wrap(src, (int) len).mismatch(NativeMemory.wrap(dst, (int) len)));
            for (int i = 0; i < count; i++) {
                ops.set(i, i, RmaOps.READ, back + (long) i * block, block, mrBack.descriptor(),
                        remoteBase + (long) i * block, mrDst.key(), peer);
            }
            runWindow(a, b, ops, count);
            assertEquals(-1, NativeMemory.wrap(src, (int) len).mismatch(NativeMemory.wrap(back, (int) len)));
            mrSrc.close();
            mrBack.close();
            mrDst.close();
            mrDst.close();
        } finally {
            NativeMemory.unmap(src, len);
            NativeMemory.unmap(dst, len);
            NativeMemory.unmap(back, len);
        }
    }

    @Test
    void shouldReportTheProviderErrorWhenAReadNamesAWrongKey() {
        long len = 4096;
        long src = NativeMemory.map(len);
        long dst = NativeMemory.map(len);
        try (FabricNic a = open("tcp;ofi_rxm");
                FabricNic b = open("tcp;ofi_rxm");
                FabricMemoryRegion mrSrc = a.register(src, len, 1, 0, 0);
                FabricMemoryRegion mrDst = b.register(dst, len, 1, 0, 0)) {
            long peer = a.insertPeer(b.address());
            RmaOps ops = new RmaOps(1);
            ops.set(0, 5, RmaOps.READ, src, len, mrSrc.descriptor(), 0, mrDst.key() + 99, peer);
            CompletionSlots done = new CompletionSlots(8);
            long deadline = System.nanoTime() + 20_000_000_000L;
            int posted = 0;
            String error = null;
            long[] out = new long[3];
            while (error == null) {
                assertTrue(System.nanoTime() < deadline, "no error reported for a wrong key");
                if (posted == 0) {
                    posted = a.post(ops, 0, 1);
                }
                int got = a.reap(done, 8);
                assertEquals(0, Math.max(got, 0), "a read with a wrong key completed");
                if (got == -LibFabric.FI_EAVAIL) {
                    error = a.readError(out);
                }
                b.reap(done, 8);
            }
            assertEquals(5, out[0], "the error names the operation's slot");
            assertNotEquals(0, out[1]);
            assertTrue(error.contains("provider"), error);
        } finally {
            NativeMemory.unmap(src, len);
            NativeMemory.unmap(dst, len);
        }
    }

    @Test
    void shouldRefuseTheSecondRegionWithTheSameKeyWhenTheProviderDoesNotChooseKeys() {
        long len = 4096;
        long m = NativeMemory.map(2 * len);
        try (FabricNic a = open("tcp;ofi_rxm");
                FabricMemoryRegion first = a.register(m, len, 7, 0, 0)) {
            FabricException e = assertThrows(FabricException.class, () -> a.register(m + len, len, 7, 0, 0));
            assertEquals(266, e.errno(), e.getMessage());
            assertTrue(e.getMessage().contains("fi_mr_reg"), e.getMessage());
            assertEquals(7, first.key());
        } finally {
            NativeMemory.unmap(m, 2 * len);
        }
    }

    @Test
    void shouldFailTheNthRegistrationWhenTheSeamSaysSo() {
        long len = 4096;
        long m = NativeMemory.map(2 * len);
        try (FabricNic a = open("tcp;ofi_rxm")) {
            FabricFaults.failRegistration(2, 12);
            a.register(m, len, 1, 0, 0).close();
            FabricException e = assertThrows(FabricException.class, () -> a.register(m + len, len, 2, 0, 0));
            assertEquals(12, e.errno());
            a.register(m + len, len, 2, 0, 0).close();
        } finally {
            NativeMemory.unmap(m, 2 * len);
        }
    }

    @Test
    void shouldUseProviderKeysAndBindToTheEndpointWhenTheSeamForcesThoseModes() {
        FabricFaults.addMrMode(LibFabric.FI_MR_PROV_KEY | LibFabric.FI_MR_ENDPOINT);
        long len = 4096;
        long m = NativeMemory.map(2 * len);
        try (FabricNic a = open("tcp;ofi_rxm")) {
            assertEquals(LibFabric.FI_MR_PROV_KEY | LibFabric.FI_MR_ENDPOINT,
                    a.mrMode() & (LibFabric.FI_MR_PROV_KEY | LibFabric.FI_MR_ENDPOINT));
            try (FabricMemoryRegion r1 = a.register(m, len, 7, 0, 0);
                    FabricMemoryRegion r2 = a.register(m + len, len, 7, 0, 0)) {
                assertTrue(r1.key() >= 1 << 20 && r2.key() >= 1 << 20, "keys chosen natively");
                assertNotEquals(r1.key(), r2.key());
            }
        } finally {
            NativeMemory.unmap(m, 2 * len);
        }
    }

    private static int lengthOrMinusOne(String s) {
        try {
            return s.length();
        } catch (NullPointerException e) {
            return -1;
        }
    }

    /**
     * libfabric's shm provider installs its own SIGSEGV handler when libfabric initialises; the JVM
     * turns null dereferences in compiled code into SIGSEGV and would die behind it. Compiled code
     * taking many null dereferences after libfabric initialised must keep running.
     */
    @Test
    void shouldKeepTheJvmSignalHandlersWhenLibfabricInitialises() {
        FabricInfo.Query.run("shm", null, MR_MODES).close();
        String[] values = {"x", null};
        long sum = 0;
        for (int i = 0; i < 2_000_000; i++) {
            sum += lengthOrMinusOne(values[i & 1]);
        }
        assertEquals(0, sum);
    }

    @Test
    void shouldNameTheProviderWhenItDoesNotExist() {
        FabricException e = assertThrows(FabricException.class,
                () -> FabricInfo.Query.run("no-such-provider", null, MR_MODES));
        assertTrue(e.getMessage().contains("no-such-provider"), e.getMessage());
    }
}
