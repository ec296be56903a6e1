package io.mooncake4j.djl.kv;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.mooncake4j.DeviceMemory;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvError;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A paged KV cache for every request of one model: one region of registered memory laid out by a
 * {@link KvLayout}, registered with the engine ONCE as a whole (never per block), and a {@link
 * BlockAllocator} over its blocks.
 *
 * <p>The region is host memory ({@code cpu:0}) or GPU memory ({@code cuda:N}, {@link
 * #allocate(TransferEngine, KvLayout, MemoryLocation)}); the connector moves blocks of either kind
 * the same way. Blocks of a host pool are exposed to DJL as {@link NDArray}s that wrap the
 * registered memory without copying ({@link #view}, {@link #buffer}), so a model writes its keys
 * and values where the transfer engine reads them. A device pool has no host views: {@link
 * #write} and {@link #read} copy bytes in and out of either kind through the engine (for a device
 * pool, its device copier).
 *
 * <p>Thread safe. {@link #close()} frees memory the pool allocated; arrays from {@link #view} must
 * not be used after it.
 */
public final class PagedKvPool implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(PagedKvPool.class);
    private static final Map<String, Boolean> ZERO_COPY_ENGINES = new ConcurrentHashMap<>();
    /** Largest view in bytes; larger spans are split (DJL shapes and ByteBuffers are int-sized). */
    static final long MAX_VIEW_BYTES = 1L << 30;

    private final TransferEngine engine;
    private final KvLayout layout;
    private final long address;
    private final MemoryLocation location;
    /** Frees the memory the pool allocated; null when the caller owns it. */
    private final Runnable free;
    private final BlockAllocator allocator;
    private final AtomicBoolean closed = new AtomicBoolean();

    private PagedKvPool(TransferEngine engine, KvLayout layout, long address, MemoryLocation location,
            Runnable free) {
        this.engine = engine;
        this.layout = layout;
        this.address = address;
        this.location = location;
        this.free = free;
        this.allocator = new BlockAllocator(layout.numBlocks());
    }

    /**
     * Allocates and registers {@code layout.totalBytes()} of page-aligned host memory with one
     * {@link TransferEngine#allocate} call.
     *
     * @param engine the engine that registers the memory
     * @param layout the geometry
     * @return the pool, which owns and frees the memory
     */
    public static PagedKvPool allocate(TransferEngine engine, KvLayout layout) {
        return allocate(engine, layout, MemoryLocation.CPU);
    }

    /**
     * Allocates and registers {@code layout.totalBytes()} on {@code location} with one {@link
     * TransferEngine#allocate} call: page-aligned host memory for {@code cpu:0}, device memory for
     * {@code cuda:N} (through the engine's GPU provider, {@code mooncake4j-gpu-cuda}).
     *
     * @param engine the engine that allocates and registers the memory
     * @param layout the geometry
     * @param location {@code cpu:0} or {@code cuda:N}
     * @return the pool, which owns and frees the memory
     * @throws KvException INVALID_PARAMS for another location
     * @throws io.mooncake4j.MooncakeException REGISTRATION, naming what to add, when no GPU library
     *     or device serves {@code cuda:N}
     */
    public static PagedKvPool allocate(TransferEngine engine, KvLayout layout, MemoryLocation location) {
        Objects.requireNonNull(engine, "engine");
        Objects.requireNonNull(layout, "layout");
        Objects.requireNonNull(location, "location");
        if (location.isCuda()) {
            DeviceMemory mem = engine.allocate(layout.totalBytes(), location);
            return new PagedKvPool(engine, layout, mem.address(), location, mem::close);
        }
        if (!location.equals(MemoryLocation.CPU)) {
            throw new KvException(KvError.INVALID_PARAMS, "a KV pool lives on cpu:0 or cuda:N, not " + location
                    + " (host pools are not placed on NUMA nodes)");
        }
        HostMemory mem = engine.allocate(layout.totalBytes());
        return new PagedKvPool(engine, layout, mem.address(), location, mem::close);
    }

    /**
     * A pool over memory the caller registered with {@code engine} (e.g. a larger {@link
     * HostMemory} shared with other users). The caller keeps ownership: {@link #close()} does not
     * free it.
     *
     * <p>The pool lives where the buffer was registered ({@code cpu:N} or {@code cuda:N}).
     *
     * @param engine the engine the memory is registered with
     * @param address the first byte of the cache; a multiple of the element size
     * @param length bytes available, at least {@code layout.totalBytes()}
     * @param layout the geometry
     * @return the pool
     * @throws KvException INVALID_PARAMS when the range is too small or not inside one registered
     *     buffer of the engine's segment
     */
    public static PagedKvPool wrap(TransferEngine engine, long address, long length, KvLayout layout) {
        Objects.requireNonNull(engine, "engine");
        Objects.requireNonNull(layout, "layout");
        if (length < layout.totalBytes()) {
            throw new KvException(KvError.INVALID_PARAMS, "a " + layout + " needs " + layout.totalBytes()
                    + " bytes but the memory given has " + length);
        }
        if (address % layout.dataType().getNumOfBytes() != 0) {
            throw new KvException(KvError.INVALID_PARAMS, "KV cache address 0x" + Long.toHexString(address)
                    + " is not aligned to its element size");
        }
        BufferDescriptor buffer = engine.localDescriptor().bufferContaining(address, layout.totalBytes());
        if (buffer == null) {
            throw new KvException(KvError.INVALID_PARAMS, "[0x" + Long.toHexString(address) + ", +"
                    + layout.totalBytes() + ") is not inside one buffer registered with " + engine
                    + ": register the whole region once with registerMemory or use allocate()");
        }
        return new PagedKvPool(engine, layout, address, MemoryLocation.parse(buffer.name()), null);
    }

    /** The engine the memory is registered with. */
    public TransferEngine engine() {
        return engine;
    }

    /** The geometry. */
    public KvLayout layout() {
        return layout;
    }

    /** Where the memory lives: {@code cpu:N} or {@code cuda:N}. */
    public MemoryLocation location() {
        return location;
    }

    /** Whether the memory is host memory, which {@link #view} and {@link #buffer} can wrap. */
    public boolean hasHostViews() {
        return !location.isCuda();
    }

    /** The segment name peers open to reach this pool. */
    public String segmentName() {
        return engine.localSegmentName();
    }

    /** The first byte of the cache region. */
    public long address() {
        return address;
    }

    /** The allocator of this pool's blocks. */
    public BlockAllocator allocator() {
        return allocator;
    }

    /** The absolute address of block 0 of a (layer, part): the base a peer adds {@code id * blockBytes} to. */
    public long partAddress(int layer, KvPart part) {
        return address + layout.partOffset(layer, part);
    }

    /** The absolute address of a block. */
    public long blockAddress(int layer, KvPart part, int block) {
        return address + layout.blockOffset(layer, part, block);
    }

    /**
     * A little-endian direct buffer over {@code count} consecutive blocks of a (layer, part), sharing
     * the registered memory.
     */
    public ByteBuffer buffer(int layer, KvPart part, int firstBlock, int count) {
        long bytes = spanBytes(firstBlock, count);
        ensureOpen();
        ensureHostViews();
        return NativeMemory.wrap(blockAddress(layer, part, firstBlock), (int) bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * An array of shape {@code [count * blockTokens, kvDim]} and the layout's data type over {@code
     * count} consecutive blocks of a (layer, part), wrapping the registered memory without a copy:
     * writes through it land in the blocks, and bytes that arrive in the blocks show in it.
     *
     * @param layer the layer
     * @param part keys or values
     * @param firstBlock the first block id
     * @param count the number of consecutive blocks
     * @param manager the manager the array is attached to; its engine must wrap direct buffers
     *     without copying (PyTorch does)
     * @return the view
     * @throws KvException INVALID_PARAMS on a pool in device memory (see {@link #hasHostViews()})
     */
    public NDArray view(int layer, KvPart part, int firstBlock, int count, NDManager manager) {
        ensureOpen();
        ensureHostViews();
        ensureZeroCopy(manager);
        ByteBuffer buf = buffer(layer, part, firstBlock, count);
        return manager.create(buf, new Shape((long) count * layout.blockTokens(), layout.kvDim()), layout.dataType());
    }

    /**
     * Copies {@code src.remaining()} bytes into a (layer, part) of the pool at byte {@code offset}
     * (block {@code b} starts at {@code b * layout().blockBytes()}), advancing {@code src}'s
     * position. Works on host and device pools alike ({@link TransferEngine#copyIn}: a device pool is
     * written through the engine's staging region and device copier).
     *
     * @throws KvException INVALID_PARAMS when the range is outside the (layer, part); CLOSED
     * @throws io.mooncake4j.MooncakeException TRANSFER_FAILED when a device copy did not complete
     */
    public void write(int layer, KvPart part, long offset, ByteBuffer src) {
        long at = rangeAddress(layer, part, offset, src.remaining());
        engine.copyIn(at, src);
    }

    /**
     * Copies {@code dst.remaining()} bytes of a (layer, part) of the pool from byte {@code offset}
     * into {@code dst}, advancing its position; the counterpart of {@link #write}.
     *
     * @throws KvException INVALID_PARAMS when the range is outside the (layer, part); CLOSED
     */
    public void read(int layer, KvPart part, long offset, ByteBuffer dst) {
        long at = rangeAddress(layer, part, offset, dst.remaining());
        engine.copyOut(at, dst);
    }

    private long rangeAddress(int layer, KvPart part, long offset, int length) {
        ensureOpen();
        if (offset < 0 || offset + length > layout.partBytes()) {
            throw new KvException(KvError.INVALID_PARAMS, "bytes [" + offset + ", +" + length + ") are outside a"
                    + " (layer, part) of " + layout.partBytes() + " bytes");
        }
        return partAddress(layer, part) + offset;
    }

    private void ensureHostViews() {
        if (location.isCuda()) {
            throw new KvException(KvError.INVALID_PARAMS, "KV pool " + layout + " is in " + location
                    + " memory, which DJL arrays and ByteBuffers cannot wrap: copy blocks with write/read"
                    + " (through the engine's device copier), or give the model a host pool (MC_KV_LOCATION=cpu:0)");
        }
    }

    private long spanBytes(int firstBlock, int count) {
        if (count <= 0 || firstBlock < 0 || firstBlock + (long) count > layout.numBlocks()) {
            throw new KvException(KvError.INVALID_PARAMS, "blocks [" + firstBlock + ", +" + count
                    + ") outside the pool's " + layout.numBlocks());
        }
        long bytes = (long) count * layout.blockBytes();
        if (bytes > MAX_VIEW_BYTES) {
            throw new KvException(KvError.INVALID_PARAMS, count + " blocks span " + bytes
                    + " bytes, more than one view may (" + MAX_VIEW_BYTES + "): split the range");
        }
        return bytes;
    }

    /** The most consecutive blocks one {@link #view} may span. */
    public int maxViewBlocks() {
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, MAX_VIEW_BYTES / layout.blockBytes()));
    }

    /**
     * Allocates blocks for {@code tokens} positions and returns a cache over them that releases them
     * when closed.
     *
     * @param tokens the capacity wanted, in positions
     * @param manager the parent of the cache's array manager
     * @return the cache
     * @throws KvException POOL_EXHAUSTED when not enough blocks are free
     */
    public PagedKvCache newCache(int tokens, NDManager manager) {
        ensureOpen();
        int[] blocks = allocator.allocate(layout.blocksFor(tokens));
        try {
            return new PagedKvCache(this, blocks, true, manager);
        } catch (RuntimeException e) {
            allocator.release(blocks);
            throw e;
        }
    }

    /**
     * A cache over a block table the caller manages (the cache neither retains nor releases the
     * blocks).
     *
     * @param blocks the block table: block {@code i} holds positions {@code [i * blockTokens, (i + 1)
     *     * blockTokens)}
     * @param manager the parent of the cache's array manager
     * @return the cache
     */
    public PagedKvCache cache(int[] blocks, NDManager manager) {
        ensureOpen();
        return new PagedKvCache(this, blocks.clone(), false, manager);
    }

    /**
     * Checks once per DJL engine that {@link NDManager#create(java.nio.Buffer, Shape, DataType)} over a
     * direct buffer shares the memory instead of copying it, and fails with a message when it does
     * not: such an engine cannot back a paged cache the transfer engine reads.
     *
     * @param manager a manager of the engine to check
     */
    public static void ensureZeroCopy(NDManager manager) {
        String name = manager.getEngine().getEngineName();
        Boolean ok = ZERO_COPY_ENGINES.get(name);
        if (ok == null) {
            ok = probeZeroCopy(manager);
            ZERO_COPY_ENGINES.put(name, ok);
        }
        if (!ok) {
            throw new KvException(KvError.UNSUPPORTED_DTYPE, "DJL engine " + name
                    + " copies direct buffers in NDManager.create: use the PyTorch engine for a paged KV cache");
        }
    }

    private static boolean probeZeroCopy(NDManager manager) {
        ByteBuffer probe = ByteBuffer.allocateDirect(16).order(ByteOrder.nativeOrder());
        try (NDManager tmp = manager.newSubManager()) {
            NDArray a = tmp.create(probe, new Shape(4), DataType.FLOAT32);
            probe.putFloat(4, 42f);
            float seen = a.toFloatArray()[1];
            a.set(new ai.djl.ndarray.index.NDIndex(2), 7f);
            float back = probe.getFloat(8);
            boolean ok = seen == 42f && back == 7f;
            if (!ok) {
                LOG.warn("DJL engine {} copies direct buffers (saw {} and {})", manager.getEngine().getEngineName(), seen, back);
            }
            return ok;
        }
    }

    private void ensureOpen() {
        if (closed.get()) {
            throw new KvException(KvError.CLOSED, "KV pool " + layout + " of " + engine + " is closed");
        }
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
        return closed.get();
    }

    /**
     * Frees the memory if the pool allocated it (unregistering waits for transfers still using it).
     * Idempotent.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        allocator.wakeWaiters();
        int used = allocator.usedBlocks();
        if (used > 0) {
            LOG.debug("closing KV pool with {} blocks still referenced", used);
        }
        if (free != null) {
            free.run();
        }
    }

    @Override
    public String toString() {
        return "PagedKvPool[" + layout + " at 0x" + Long.toHexString(address) + " (" + location + ") in "
                + engine.localSegmentName()
                + ", " + allocator.freeBlocks() + " free]";
    }
}
