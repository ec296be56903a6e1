package io.mooncake4j.nativeio.fabric;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One NIC's libfabric objects: fabric, domain, an {@code FI_AV_TABLE} address vector, an {@code
 * FI_CQ_FORMAT_DATA} completion queue (with a wait object when the provider has one) and ONE RDM
 * endpoint that serves every peer (a peer is an address-vector slot).
 *
 * <p>Every operation carries a context slot in {@code [0, slots)}: the native side owns one {@code
 * fi_context2} per slot for the NIC's whole life, so a context stays valid until its completion is
 * read. The caller hands out slots and frees one only after {@link #reap} returned it (or the NIC is
 * closed).
 *
 * <p>The endpoint can be {@linkplain #resetEndpoint() reset}: closed, which is the only way to make
 * a provider drop operations it accepted (libfabric cannot cancel a posted RMA), and opened again
 * on the same domain and address vector, so registrations and peers' {@code fi_addr_t} stay valid.
 *
 * <p>Threads: {@link #post}, {@link #reap}, {@link #readError} and {@link #resetEndpoint} belong to
 * one progress thread; {@link #register}, {@link #insertPeer} and {@link #signal} may be called from
 * any thread (the domain is opened {@code FI_THREAD_SAFE}; a reset excludes {@link #register} and
 * {@link #signal}, which use the endpoint and its queue). The hot-path methods trust their
 * arguments and must not be called after {@link #close()}.
 */
public final class FabricNic implements AutoCloseable {
    private final long handle;
    private final FabricInfo info;
    private final int slots;
    private final long mrMode;
    private volatile byte[] name;
    private volatile boolean waitable;
    private final AtomicBoolean closed = new AtomicBoolean();

    private FabricNic(long handle, FabricInfo info, int slots) {
        this.handle = handle;
        this.info = info;
        this.slots = slots;
        this.mrMode = FabricNatives.nicLong0(handle, 0);
        this.waitable = FabricNatives.nicLong0(handle, 2) == 1;
        this.name = FabricNatives.nicName0(handle);
        if (name == null) {
            FabricNatives.nicClose0(handle);
            throw new FabricException("fi_getname on " + info, 61 /* FI_ENODATA */);
        }
    }

    /**
     * Opens the objects of one NIC found by a {@link FabricInfo.Query} (which may be closed after).
     *
     * @param slots number of operations that may be outstanding at once (context slots)
     * @throws FabricException naming the step that failed ({@code fi_domain}, {@code fi_enable}...)
     */
    public static FabricNic open(FabricInfo info, int slots) {
        if (slots <= 0) {
            throw new IllegalArgumentException("slots must be positive, got " + slots);
        }
        long h = FabricNatives.nicOpen0(info.handle, slots, Math.max(slots, 64));
        if (h < 0) {
            throw new FabricException(FabricNatives.lastStep0() + " on " + info, (int) -h);
        }
        return new FabricNic(h, info, slots);
    }

    /** What {@code fi_getinfo} said about this NIC. */
    public FabricInfo info() {
        return info;
    }

    /** Context slots (operations outstanding at once). */
    public int slots() {
        return slots;
    }

    /** The {@code mr_mode} bits in force (the provider's, plus any a test forced). */
    public long mrMode() {
        return mrMode;
    }

    /** Whether the completion queue has a wait file descriptor ({@link FabricWaitSet} can block on it). */
    public boolean isWaitable() {
        return waitable;
    }

    /** The endpoint's address ({@code fi_getname} after {@code fi_enable}); a copy. */
    public byte[] address() {
        return name.clone();
    }

    /**
     * Inserts a peer endpoint's address into the address vector.
     *
     * @return the peer's {@code fi_addr_t}
     */
    public long insertPeer(byte[] address) {
        ensureOpen();
        return FabricException.check("fi_av_insert on " + info, FabricNatives.avInsert0(handle, address));
    }

    /**
     * Registers {@code [address, address + length)} for local and remote read and write. With
     * {@code FI_MR_ENDPOINT} the region is bound to this NIC's endpoint and enabled.
     *
     * @param requestedKey the key to ask for (ignored by providers with {@code FI_MR_PROV_KEY})
     * @param iface {@code fi_hmem_iface}: {@link LibFabric#FI_HMEM_SYSTEM} for host memory, {@link
     *     LibFabric#FI_HMEM_CUDA} for CUDA
     * @param device the device ordinal for GPU memory
     */
    public synchronized FabricMemoryRegion register(
            long address, long length, long requestedKey, int iface, int device) {
        ensureOpen();
        long[] out = new long[2];
        long mr = FabricNatives.mrReg0(handle, address, length, requestedKey, iface, device, out);
        FabricException.check("fi_mr_reg of " + length + " bytes on " + info, mr);
        return new FabricMemoryRegion(mr, out[0], out[1]);
    }

    /**
     * Posts operations {@code [from, from + count)} of {@code ops} in order, in one native call.
     *
     * @return how many were posted; when fewer than {@code count}, {@link RmaOps#rc} of the first
     *     one not posted says why ({@code -FI_EAGAIN}: queue full, try again after reaping)
     */
    public int post(RmaOps ops, int from, int count) {
        return FabricNatives.post0(handle, ops.address(from), count);
    }

    /**
     * Reads up to {@code max} completions into {@code slots}, driving the endpoint's progress (the
     * passive side of peers' operations too). Never blocks.
     *
     * @return completions read (0 for none), or {@code -FI_EAVAIL} when an error entry waits for
     *     {@link #readError}, or another negative libfabric error
     */
    public int reap(CompletionSlots slots, int max) {
        return FabricNatives.reap0(handle, slots.address(), Math.min(max, slots.capacity()));
    }

    /**
     * Reads one error entry: {@code out[0]} its slot (-1 when not one of ours), {@code out[1]} the
     * libfabric error, {@code out[2]} the provider's error.
     *
     * @return the provider's text, or null when no error entry was waiting
     */
    public String readError(long[] out) {
        return FabricNatives.readErr0(handle, out);
    }

    long handle() {
        return handle;
    }

    /** Wakes a thread blocked in {@link FabricWaitSet#await} on this NIC. */
    public synchronized void signal() {
        if (!closed.get()) {
            FabricNatives.signal0(handle);
        }
    }

    /**
     * Closes the endpoint and its completion queue, then opens fresh ones on the same domain and
     * address vector. Every operation posted before is dropped by the provider, which touches its
     * memory no more once this returns, and reports none of them: the caller must treat every slot in
     * flight as ended. Peers' connections to this endpoint end too (they reconnect on their next
     * operation). The new endpoint asks for the old address; a provider that cannot give it again
     * (EFA: a new queue pair) gives a new one, and {@link #address()} changes.
     *
     * @return whether the address changed
     * @throws FabricException when no new endpoint can be opened (the NIC then has none)
     */
    public synchronized boolean resetEndpoint() {
        ensureOpen();
        byte[] old = name;
        FabricNatives.epClose0(handle);
        int rc = FabricNatives.epReopen0(handle, old);
        if (rc < 0) {
            throw new FabricException(FabricNatives.lastStep0() + " on " + info + " (reopening the endpoint)", -rc);
        }
        byte[] fresh = FabricNatives.nicName0(handle);
        if (fresh == null) {
            throw new FabricException("fi_getname on " + info + " (reopened endpoint)", 61 /* FI_ENODATA */);
        }
        name = fresh;
        waitable = FabricNatives.nicLong0(handle, 2) == 1;
        return !Arrays.equals(old, fresh);
    }

    /**
     * Binds {@code region} to the (reopened) endpoint and enables it: with {@code FI_MR_ENDPOINT} a
     * region registered before a {@link #resetEndpoint} serves again only after this.
     */
    public synchronized void rebind(FabricMemoryRegion region) {
        ensureOpen();
        FabricException.check("fi_mr_bind on " + info, FabricNatives.mrRebind0(handle, region.handle()));
    }

    private void ensureOpen() {
        if (closed.get()) {
            throw new IllegalStateException("NIC " + info + " is closed");
        }
    }

    /**
     * Closes the endpoint and its completion queue only, so that the provider lets go of every
     * operation posted on it (see {@link #resetEndpoint}); its regions can then be closed, then the
     * NIC. Call after the progress thread stopped. Idempotent.
     */
    public synchronized void closeEndpoint() {
        if (!closed.get()) {
            FabricNatives.epClose0(handle);
        }
    }

    /**
     * Closes the endpoint, completion queue, address vector, domain and fabric. Regions registered on
     * it must be closed first. Idempotent.
     */
    @Override
    public synchronized void close() {
        if (closed.compareAndSet(false, true)) {
            FabricNatives.nicClose0(handle);
        }
    }

    @Override
    public String toString() {
        return "FabricNic[" + info + "]";
    }
}
