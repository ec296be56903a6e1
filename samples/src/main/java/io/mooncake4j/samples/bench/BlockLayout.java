package io.mooncake4j.samples.bench;

import io.mooncake4j.metadata.BufferDescriptor;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.Sizes;
import java.util.List;

/**
 * Where each request of the bench goes, as in Mooncake's {@code initiatorWorker}: request {@code i}
 * of thread {@code t} moves block {@code i * threads + t} of local buffer {@code t % local buffers}
 * (one host buffer, or one per GPU with {@code --use_vram --gpu_id=-1}) to or from the same block
 * of remote buffer {@code t % buffers}, so threads never share a block. Mooncake enlarges
 * {@code --buffer_size} to {@code block_size * batch_size * threads} when it is smaller; this bench
 * keeps the buffers as given and wraps block numbers around them instead ({@link #wraps()}).
 */
public final class BlockLayout {
    private final long blockSize;
    private final int batchSize;
    private final int threads;
    private final long[] localBases;
    private final long[] remoteBases;
    private final long blocks;

    private BlockLayout(long blockSize, int batchSize, int threads, long[] localBases, long[] remoteBases,
            long blocks) {
        this.blockSize = blockSize;
        this.batchSize = batchSize;
        this.threads = threads;
        this.localBases = localBases.clone();
        this.remoteBases = remoteBases;
        this.blocks = blocks;
    }

    /**
     * The layout over the local buffers (each {@code localLength} bytes) and the target's buffers.
     *
     * @throws CommandFailure when the target has no buffer or one block does not fit
     */
    public static BlockLayout of(long blockSize, int batchSize, int threads, long[] localBases, long localLength,
            List<BufferDescriptor> remote) {
        if (remote.isEmpty()) {
            throw new CommandFailure("the target segment has no registered buffer: is it a bench target?");
        }
        int used = Math.min(remote.size(), threads);
        long[] bases = new long[used];
        long smallest = localLength;
        for (int i = 0; i < used; i++) {
            bases[i] = remote.get(i).address();
            smallest = Math.min(smallest, remote.get(i).length());
        }
        long blocks = smallest / blockSize;
        if (blocks < 1) {
            throw new CommandFailure("--block_size=" + blockSize + " does not fit: the local buffer has "
                    + localLength + " bytes and the target's smallest buffer " + smallestRemote(remote, used)
                    + " bytes; lower --block_size or raise --buffer_size (on both sides)");
        }
        return new BlockLayout(blockSize, batchSize, threads, localBases, bases, blocks);
    }

    private static long smallestRemote(List<BufferDescriptor> remote, int used) {
        long m = Long.MAX_VALUE;
        for (int i = 0; i < used; i++) {
            m = Math.min(m, remote.get(i).length());
        }
        return m;
    }

    public long blockSize() {
        return blockSize;
    }

    public int batchSize() {
        return batchSize;
    }

    public int threads() {
        return threads;
    }

    /** Blocks that fit in the smaller of the local buffer and each remote buffer used. */
    public long blocks() {
        return blocks;
    }

    /** Remote buffers used (at most one per thread). */
    public int remoteBuffers() {
        return remoteBases.length;
    }

    /** Slots of one round: {@code threads * batch_size}. */
    public long slots() {
        return (long) threads * batchSize;
    }

    /** Whether slots share blocks because {@code threads * batch_size} blocks do not fit. */
    public boolean wraps() {
        return slots() > blocks;
    }

    /** Block number of request {@code i} of thread {@code t}. */
    public long block(int t, int i) {
        return ((long) i * threads + t) % blocks;
    }

    /** The remote buffer thread {@code t} uses. */
    public int remoteBuffer(int t) {
        return t % remoteBases.length;
    }

    /** Local address of request {@code i} of thread {@code t}. */
    public long localAddress(int t, int i) {
        return localBases[t % localBases.length] + block(t, i) * blockSize;
    }

    /** Remote (absolute) address of request {@code i} of thread {@code t}. */
    public long remoteAddress(int t, int i) {
        return remoteBases[remoteBuffer(t)] + block(t, i) * blockSize;
    }

    /** Remote address of block {@code block} of remote buffer {@code buffer}. */
    public long remoteAddressOf(int buffer, long block) {
        return remoteBases[buffer] + block * blockSize;
    }

    /** A note for the user when blocks wrap, else null. */
    public String wrapNote() {
        if (!wraps()) {
            return null;
        }
        return "note: threads x batch_size = " + slots() + " blocks of " + Sizes.format(blockSize)
                + " do not fit in the buffers (" + blocks + " blocks): threads reuse blocks."
                + " Mooncake would enlarge --buffer_size to " + Sizes.format(slots() * blockSize) + ".";
    }
}
