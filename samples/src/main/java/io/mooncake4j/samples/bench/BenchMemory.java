package io.mooncake4j.samples.bench;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.Sizes;
import io.mooncake4j.spi.DeviceMemoryProvider;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The bench's registered buffers, as Mooncake's {@code transfer_engine_bench} allocates them: one
 * host buffer of {@code --buffer_size}, or with {@code --use_vram} one on GPU {@code --gpu_id}, or
 * with {@code --gpu_id=-1} one on every GPU (thread {@code t} uses buffer {@code t % buffers}). With
 * {@code --init_mem} every byte is 0xCC, as Mooncake sets GPU buffers; device memory is filled
 * through {@link TransferEngine#copyIn}.
 */
final class BenchMemory implements AutoCloseable {
    /** {@code --gpu_id} that spreads the buffers over every GPU. */
    static final int EVERY_GPU = -1;
    /** The most bytes one fill piece holds. */
    private static final long FILL_CHUNK = 4L << 20;

    private final List<MemoryRegion> regions = new ArrayList<>();
    private final List<Runnable> frees = new ArrayList<>();

    private BenchMemory() {}

    /**
     * Allocates and registers the buffers, each {@code size} bytes.
     *
     * @throws CommandFailure when memory cannot be allocated, and for {@code --use_vram} where no GPU
     *     library or GPU serves it (the engine's message says what to add)
     */
    static BenchMemory allocate(TransferEngine engine, long size, boolean vram, int gpuId, boolean initMem) {
        BenchMemory m = new BenchMemory();
        try {
            for (MemoryLocation where : vram ? gpus(engine, gpuId) : List.of(MemoryLocation.CPU)) {
                m.add(engine, size, where, initMem);
            }
            return m;
        } catch (RuntimeException | OutOfMemoryError e) {
            m.close();
            String what = "--buffer_size=" + size + (vram ? " with --use_vram --gpu_id=" + gpuId : "");
            throw new CommandFailure("cannot allocate " + what + ": " + e.getMessage(), e);
        }
    }

    private void add(TransferEngine engine, long size, MemoryLocation where, boolean initMem) {
        if (!where.isCuda()) {
            HostMemory h = engine.allocate(size);
            frees.add(h::close);
            regions.add(h.region());
            if (initMem) {
                NativeMemory.fill(h.address(), h.length(), 0xCC);
            }
            return;
        }
        DeviceMemory d = engine.allocate(size, where);
        frees.add(d::close);
        regions.add(d.region());
        if (initMem) {
            fill(engine, d.address(), d.length(), 0xCC);
        }
    }

    /**
     * The GPUs a {@code --gpu_id} names: that one, or with -1 each GPU of the engine's available
     * providers.
     */
    static List<MemoryLocation> gpus(TransferEngine engine, int gpuId) {
        if (gpuId != EVERY_GPU) {
            return List.of(MemoryLocation.cuda(gpuId));
        }
        int n = 0;
        for (DeviceMemoryProvider p : engine.deviceProviders().all()) {
            if (p.kind().equals("cuda") && p.isAvailable()) {
                n = Math.max(n, p.deviceCount());
            }
        }
        List<MemoryLocation> all = new ArrayList<>();
        for (int i = 0; i < Math.max(1, n); i++) { // none: cuda:0, which the engine refuses saying why
            all.add(MemoryLocation.cuda(i));
        }
        return all;
    }

    /** Sets {@code length} bytes of device memory to {@code value} ({@link TransferEngine#copyIn}, piece by piece). */
    private static void fill(TransferEngine engine, long device, long length, int value) {
        byte[] piece = new byte[(int) Math.min(length, FILL_CHUNK)];
        Arrays.fill(piece, (byte) value);
        for (long done = 0; done < length; done += piece.length) {
            engine.copyIn(device + done, ByteBuffer.wrap(piece, 0, (int) Math.min(piece.length, length - done)));
        }
    }

    /** The first byte of each buffer. */
    long[] addresses() {
        return regions.stream().mapToLong(MemoryRegion::address).toArray();
    }

    /** Bytes of each buffer. */
    long length() {
        return regions.get(0).length();
    }

    /** Where the buffers live, in order. */
    List<MemoryLocation> locations() {
        return regions.stream().map(MemoryRegion::location).collect(Collectors.toList());
    }

    /** The buffers as a target publishes them (for {@code --segment_id=self}). */
    List<BufferDescriptor> asTarget() {
        return regions.stream().map(r -> new BufferDescriptor(r.location().toString(), r.address(), r.length()))
                .collect(Collectors.toList());
    }

    /** E.g. {@code 1 GiB on cpu:0} or {@code 2 x 1 GiB on cuda:0, cuda:1}. */
    String describe() {
        String where = locations().stream().map(MemoryLocation::toString).collect(Collectors.joining(", "));
        return (regions.size() > 1 ? regions.size() + " x " : "") + Sizes.format(length()) + " on " + where;
    }

    /** Unregisters and frees every buffer. Idempotent. */
    @Override
    public void close() {
        for (int i = frees.size() - 1; i >= 0; i--) {
            frees.remove(i).run();
        }
    }
}
