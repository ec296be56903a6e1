package io.mooncake4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.RegionAccess;
import java.util.List;
import org.junit.jupiter.api.Test;

class ReleaseLedgerTest {
    @Test
    void shouldReportAnUnpinnedCopyOnceAndIgnoreReportsOfAnotherRound() {
        ReleaseLedger ledger = new ReleaseLedger(4);
        ledger.start(4, 7);
        assertTrue(ledger.holdsPins(4), "every request has its part out");
        assertFalse(ledger.reportCopy(2, 6), "a report about an earlier round");
        assertTrue(ledger.reportCopy(2, 7));
        assertFalse(ledger.reportCopy(2, 7), "a second report of the one part");
        assertFalse(ledger.reportAll(2, 7), "nothing left to report");
        for (int i : new int[] {0, 1, 3}) {
            assertTrue(ledger.reportCopy(i, 7));
        }
        assertFalse(ledger.holdsPins(4), "every part reported");
    }

    @Test
    void shouldReleaseThePinOfACopyToAPeerWhenItReports() {
        MemoryRegistry registry = new MemoryRegistry();
        registry.register(List.of(new MemoryRegion(0x10000, 0x1000, MemoryLocation.CPU)), RegionAccess.REMOTE, InstalledTransports.of());
        RegisteredRegion pin = registry.pinRegion(0x10000, 0x10);
        ReleaseLedger ledger = new ReleaseLedger(2);
        ledger.start(2, 3);
        ledger.pinned(1, pin);
        assertTrue(ledger.reportCopy(1, 3));
        assertEquals(0, pin.pins(), "released with the request's one part");
        assertFalse(ledger.reportCopy(1, 3));
        assertEquals(0, pin.pins(), "released once");
        ledger.start(2, 4);
        assertEquals(null, ledger.region(1), "a new round starts with nothing pinned");
    }
}
