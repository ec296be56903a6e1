package io.mooncake4j.transport.efa;

import io.mooncake4j.nativeio.fabric.CompletionSlots;
import io.mooncake4j.nativeio.fabric.FabricInfo;
import io.mooncake4j.nativeio.fabric.FabricNic;
import io.mooncake4j.nativeio.fabric.LibFabric;
import io.mooncake4j.nativeio.fabric.RmaOps;
import java.util.HexFormat;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * One NIC's context: its libfabric objects ({@link FabricNic}: one shared RDM endpoint for every
 * peer), the keys it hands out, and the bookkeeping of its operations in flight. The slot tables,
 * the staged operations and the completion buffer belong to the single {@link EfaProgress} thread
 * that owns this NIC; nothing else touches them.
 */
final class EfaNic implements AutoCloseable {
    /** The mr_mode bits this transport honours (see {@link EfaRegistration}). */
    static final long MR_MODE_HINTS =
            LibFabric.FI_MR_LOCAL
                    | LibFabric.FI_MR_VIRT_ADDR
                    | LibFabric.FI_MR_ALLOCATED
                    | LibFabric.FI_MR_PROV_KEY
                    | LibFabric.FI_MR_ENDPOINT;

    final int index;
    final FabricNic fabric;
    final String name;
    /** The endpoint's address as published ({@code gid}, {@code efa_addr}); changes only if a reset gives a new one. */
    volatile String addressHex;
    final boolean virtualAddresses;
    final boolean providerKeys;
    final int capacity;
    private final AtomicLong nextKey = new AtomicLong(1);
    private final Map<String, Long> peers = new ConcurrentHashMap<>();
    /** NIC paths ({@code segment@device}) of the peers that handshook with this NIC: they know its address. */
    final Set<String> knownBy = ConcurrentHashMap.newKeySet();
    /** Operations this NIC completed and bytes they moved (written by the progress thread). */
    final LongAdder operations = new LongAdder();
    final LongAdder bytes = new LongAdder();
    /** Endpoint resets (memory unregistered under operations a peer never answered). */
    final LongAdder resets = new LongAdder();
    /** New addresses of peer devices learned from their announcements (their endpoint was reset). */
    final LongAdder addressesLearned = new LongAdder();

    // Owned by the progress thread.
    final RmaOps ops;
    final CompletionSlots completions;
    final EfaWork[] slotWork;
    /** The local registration each slot's operation uses, read when memory is unregistered. */
    final EfaRegistration[] slotRegistration;
    /** Posting order of each slot's operation. */
    final long[] slotSeq;
    /** Writes whose report waits for a later delivery-complete write ({@link #lastWriteDelivers}). */
    final boolean[] slotOrderedWrite;
    /** Writes asking for delivery completion on a NIC where {@link #lastWriteDelivers}. */
    final boolean[] slotDelivery;
    long nextSeq;
    /**
     * Whether the provider places writes to a peer in posting order, for operations up to the slice
     * size: then only the last write of each submission in a posted batch asks for delivery
     * completion ({@link EfaDelivery}); else every write does. Set before the progress thread starts.
     */
    boolean lastWriteDelivers;
    final int[] slotFirst;
    final int[] slotLast;
    final long[] slotBytes;
    private final int[] freeSlots;
    private int freeCount;
    /** Staged operations [stagedFrom, stagedTo) of {@link #ops} not yet accepted by the provider. */
    int stagedFrom;
    int stagedTo;

    private EfaNic(int index, FabricNic fabric, int capacity) {
        this.index = index;
        this.fabric = fabric;
        this.name = fabric.info().domain();
        this.addressHex = HexFormat.of().formatHex(fabric.address());
        this.virtualAddresses = (fabric.mrMode() & LibFabric.FI_MR_VIRT_ADDR) != 0;
        this.providerKeys = (fabric.mrMode() & LibFabric.FI_MR_PROV_KEY) != 0;
        this.capacity = capacity;
        this.ops = new RmaOps(capacity);
        this.completions = new CompletionSlots(64);
        this.slotWork = new EfaWork[capacity];
        this.slotRegistration = new EfaRegistration[capacity];
        this.slotSeq = new long[capacity];
        this.slotOrderedWrite = new boolean[capacity];
        this.slotDelivery = new boolean[capacity];
        this.slotFirst = new int[capacity];
        this.slotLast = new int[capacity];
        this.slotBytes = new long[capacity];
        this.freeSlots = new int[capacity];
        for (int i = 0; i < capacity; i++) {
            freeSlots[i] = capacity - 1 - i;
        }
        this.freeCount = capacity;
    }

    /**
     * Opens one NIC. The in-flight cap is the provider's transmit depth, or {@code maxWr} when that
     * is smaller (and not 0).
     */
    static EfaNic open(int index, FabricInfo info, int maxWr) {
        long tx = info.txSize() <= 0 ? 1024 : info.txSize();
        int cap = (int) Math.min(Math.min(tx, 1 << 16), maxWr > 0 ? maxWr : Long.MAX_VALUE);
        return new EfaNic(index, FabricNic.open(info, cap), cap);
    }

    /** The address-vector entry of a peer endpoint given as hex of its name; inserted once. */
    long peer(String addressHex) {
        return peers.computeIfAbsent(addressHex, hex -> fabric.insertPeer(HexFormat.of().parseHex(hex)));
    }

    /**
     * Closes and reopens the endpoint (see {@link FabricNic#resetEndpoint}); the caller (the progress
     * thread) must then end every operation that was in flight.
     *
     * @return whether the endpoint's address changed
     */
    boolean resetEndpoint() {
        resets.increment();
        boolean changed = fabric.resetEndpoint();
        addressHex = HexFormat.of().formatHex(fabric.address());
        return changed;
    }

    /** The key to ask for a new region: a per-domain counter, since two regions may not share one. */
    long nextRequestedKey() {
        return nextKey.getAndIncrement();
    }

    /** The remote address an operation names: a virtual address, or the offset in the region. */
    long remoteAddress(long address, long regionStart) {
        return virtualAddresses ? address : address - regionStart;
    }

    boolean hasCredit() {
        return freeCount > 0 && stagedTo < capacity;
    }

    int inFlight() {
        return capacity - freeCount;
    }

    int takeSlot() {
        return freeSlots[--freeCount];
    }

    void releaseSlot(int slot) {
        slotWork[slot] = null;
        slotRegistration[slot] = null;
        slotOrderedWrite[slot] = false;
        slotDelivery[slot] = false;
        freeSlots[freeCount++] = slot;
    }

    @Override
    public void close() {
        fabric.close();
    }

    @Override
    public String toString() {
        return name + "(" + fabric.info().provider() + ")";
    }
}
