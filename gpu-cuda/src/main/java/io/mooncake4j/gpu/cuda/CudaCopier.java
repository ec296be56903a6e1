package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventQuery;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuMemcpyAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamQuery;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.DeviceCopier;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import jcuda.driver.CUcontext;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Same-process copies on one device's primary context with an owned non-blocking stream. Each
 * copy's direction comes from where its pointers live ({@link CudaDriver#rangeOf}); small
 * device-to-device copies of a batch go to the {@link GatherKernel}, the rest to the driver's
 * typed asynchronous copies. A batch whose last operation is a gather launch is signalled by the
 * kernel into host memory; any other batch ends with an event. The copier's completion thread
 * watches them in order and completes the futures, so no driver callback ever runs user code. Any
 * number of threads may call {@link #copy} at once: each pushes the context and locates its
 * pointers on its own; only numbering and enqueueing a batch take the copier's lock.
 *
 * <p>The usual KV batch, 1 to 128 small device-to-device copies, is one gather launch, and the
 * launch costs the host more than everything else the engine does for the batch (4-7 us on an
 * H200 VM). So {@link #copy} only fills one of the kernel's ring lists with it and hands it to the
 * copier's launching thread: the submitting thread's next batch overlaps this one's launch. Any
 * other batch is enqueued by the calling thread itself once the launching thread has launched what
 * it was given, so the stream keeps the batches in their numbered order.
 */
final class CudaCopier implements DeviceCopier {
    /** How long a batch may take on the device before its future fails. */
    static final long COMPLETION_BOUND_NANOS = TimeUnit.SECONDS.toNanos(30);

    private static final Logger LOG = LoggerFactory.getLogger(CudaCopier.class);
    // Between two checks of a batch the completion thread spins ~2 us (fewer driver calls to
    // contend with the submitting thread's); after ~2 ms of that it parks between checks.
    private static final int POLLS_BEFORE_PARKING = 1_000;
    private static final int SPINS_BETWEEN_POLLS = 64;
    private static final long PARK_NANOS = 5_000;
    private static final int STREAM_QUERY_EVERY = 256;
    private static final int IDLE_SPINS = 20_000; // ~1 ms of an idle completion thread before it parks
    private static final long IDLE_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(50);

    private final CudaDriver driver;
    private final int device;
    private final CUcontext context; // the device's primary context
    private final CUstream stream = new CUstream();
    private final GatherKernel gather;
    private final Object lock = new Object();
    private final ConcurrentLinkedQueue<CUevent> idleEvents = new ConcurrentLinkedQueue<>();
    private final BatchQueue pending = new BatchQueue(); // batches to complete, in order
    private final BatchQueue launches = new BatchQueue(); // ring lists to launch, in order
    private final Thread completer;
    private final Thread launcher;
    /** The last batch whose operations are all on the stream (launched by the launching thread or enqueued by its caller). */
    private volatile long launched;
    private long listsHandedOut; // guarded by lock
    private final ThreadLocal<Located> located = ThreadLocal.withInitial(Located::new);
    private long submitted; // guarded by lock: batches numbered from 1
    private volatile boolean closed;
    private volatile Throwable broken; // why the completion thread stopped, if it did

    CudaCopier(CudaDriver driver, int device) {
        this.driver = driver;
        this.device = device;
        this.context = driver.primaryContext(device);
        try (ContextScope ignored = ContextScope.push(context)) {
            CudaDriver.check(cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
            try {
                gather = new GatherKernel();
            } catch (RuntimeException e) {
                cuStreamDestroy(stream);
                throw e;
            }
        }
        completer = new Thread(this::completeInOrder, "mc4j-cuda-copier-" + device);
        completer.setDaemon(true);
        launcher = new Thread(this::launchInOrder, "mc4j-cuda-launcher-" + device);
        launcher.setDaemon(true);
        completer.start();
        launcher.start();
    }

    @Override
    public CompletableFuture<Void> copy(long[] dst, long[] src, long[] len, int n) {
        if (n < 0 || n > dst.length || n > src.length || n > len.length) {
            throw new MooncakeException(
                    ErrorCode.INVALID_ARGUMENT,
                    "copy of " + n + " entries needs arrays at least that long (dst " + dst.length + ", src " + src.length + ", len " + len.length + ")");
        }
        if (closed) {
            throw closedException();
        }
        CompletableFuture<Void> done = new CompletableFuture<>();
        // The context and where each pointer lives are the calling thread's own: only enqueueing
        // (batch number, launches, the pending entry) is serialised, so submitting threads overlap.
        Located where = located.get();
        try (ContextScope ignored = ContextScope.push(context)) {
            where.locate(dst, src, len, n);
            synchronized (lock) {
                if (closed) {
                    throw closedException();
                }
                if (broken != null) {
                    done.completeExceptionally(stopped(broken));
                    return done;
                }
                if (where.oneGather) {
                    handOff(dst, src, len, n, where.longest, done);
                } else {
                    enqueueBatch(dst, src, len, n, where, done);
                }
            }
        } catch (MooncakeException e) {
            if (e.code() == ErrorCode.INVALID_ARGUMENT || e.code() == ErrorCode.CLOSED) {
                throw e;
            }
            done.completeExceptionally(e);
        }
        return done;
    }

    private MooncakeException closedException() {
        return new MooncakeException(ErrorCode.CLOSED, "the CUDA copier of cuda:" + device + " was closed");
    }

    /**
     * Under {@code lock}: numbers a batch that is one gather launch, fills a ring list with it and
     * hands it to the launching thread (waiting for a free list while {@link GatherKernel#RING} wait).
     */
    private void handOff(long[] dst, long[] src, long[] len, int n, long longest, CompletableFuture<Void> done) {
        awaitLaunched(submitted - GatherKernel.RING + 1); // every batch not launched yet holds a list
        long batch = ++submitted;
        int list = (int) (listsHandedOut++ % GatherKernel.RING);
        gather.fill(list, dst, src, len, n, longest, batch);
        Pending p = new Pending(null, done, batch, list, System.nanoTime() + COMPLETION_BOUND_NANOS);
        pending.add(p, completer);
        launches.add(p, launcher);
    }

    /**
     * Under {@code lock}, with the context current: numbers any other batch, enqueues it and tracks
     * it, once the launching thread has launched every batch numbered before.
     */
    private void enqueueBatch(long[] dst, long[] src, long[] len, int n, Located where, CompletableFuture<Void> done) {
        awaitLaunched(submitted);
        long batch = ++submitted;
        try {
            CUevent event = null; // a batch ending with a gather launch is signalled by the kernel
            if (!enqueue(dst, src, len, n, where, batch)) {
                event = idleEvents.isEmpty() ? newEvent() : idleEvents.poll();
                CudaDriver.check(cuEventRecord(event, stream), "cuEventRecord");
            }
            pending.add(new Pending(event, done, batch, -1, System.nanoTime() + COMPLETION_BOUND_NANOS), completer);
        } catch (MooncakeException e) {
            gather.discard(); // a list left half-filled must not ride along with the next batch
            throw e;
        } finally {
            launched = batch;
        }
    }

    /** Under {@code lock}: waits until the launching thread has launched batch {@code batch} and those before. */
    private void awaitLaunched(long batch) {
        for (int spins = 0; launched < batch; spins++) {
            if (broken != null) {
                throw stopped(broken);
            }
            launches.wake(launcher);
            if (spins < 1_000) {
                Thread.onSpinWait();
            } else {
                Thread.yield();
            }
        }
    }

    /**
     * Where each copy's two sides live ({@link CudaDriver#HOST} or a device), per submitting thread,
     * and whether the whole batch is one gather launch's list.
     */
    private final class Located {
        private int[] to = new int[0];
        private int[] from = new int[0];
        private boolean oneGather; // 1 to MAX_ENTRIES copies, each a gather entry
        private long longest;

        void locate(long[] dst, long[] src, long[] len, int n) {
            if (isOneGatherWithin(dst, src, len, n)) {
                return;
            }
            if (to.length < n) {
                to = new int[n];
                from = new int[n];
            }
            oneGather = n >= 1 && n <= GatherKernel.MAX_ENTRIES;
            longest = 0;
            DeviceRanges.Range lastTo = null; // a batch's blocks mostly lie in one or two allocations
            DeviceRanges.Range lastFrom = null;
            for (int i = 0; i < n; i++) {
                if (len[i] < 0) {
                    throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "copy " + i + " has a negative length " + len[i]);
                }
                if (lastTo == null || !lastTo.contains(dst[i])) {
                    lastTo = driver.rangeOf(dst[i]);
                }
                if (lastFrom == null || !lastFrom.contains(src[i])) {
                    lastFrom = driver.rangeOf(src[i]);
                }
                to[i] = lastTo == null ? CudaDriver.HOST : lastTo.device();
                from[i] = lastFrom == null ? CudaDriver.HOST : lastFrom.device();
                oneGather &= isGatherEntry(to[i], from[i], len[i]);
                longest = Math.max(longest, len[i]);
            }
        }

        /**
         * The usual KV batch, checked with a few comparisons a copy: every destination in the
         * allocation of the first, every source in that of the first, both on this copier's device,
         * each copy a gather entry. Sets {@code oneGather} and {@code longest} when so (the
         * per-copy sides are then not needed); false sends the batch to the general loop.
         */
        private boolean isOneGatherWithin(long[] dst, long[] src, long[] len, int n) {
            if (n < 1 || n > GatherKernel.MAX_ENTRIES) {
                return false;
            }
            DeviceRanges.Range to = driver.rangeOf(dst[0]);
            DeviceRanges.Range from = driver.rangeOf(src[0]);
            if (to == null || from == null || to.device() != device || from.device() != device) {
                return false;
            }
            long toStart = to.start();
            long toSize = to.end() - toStart;
            long fromStart = from.start();
            long fromSize = from.end() - fromStart;
            boolean all = true;
            long max = 0;
            for (int i = 0; i < n; i++) {
                long bytes = len[i];
                all &= Long.compareUnsigned(dst[i] - toStart, toSize) < 0
                        & Long.compareUnsigned(src[i] - fromStart, fromSize) < 0
                        & Long.compareUnsigned(bytes - 1, GatherKernel.MAX_ENTRY_BYTES) < 0; // 1 to MAX_ENTRY_BYTES
                max = Math.max(max, bytes);
            }
            if (all) {
                oneGather = true;
                longest = max;
            }
            return all;
        }
    }

    /** A device-to-device copy on this copier's device small enough for the gather kernel (and not empty). */
    private boolean isGatherEntry(int to, int from, long bytes) {
        return to == device && from == device && bytes > 0 && bytes <= GatherKernel.MAX_ENTRY_BYTES;
    }

    /** Enqueues the copies as batch {@code batch}; true when the gather kernel will signal it. */
    private boolean enqueue(long[] dst, long[] src, long[] len, int n, Located where, long batch) {
        int[] to = where.to;
        int[] from = where.from;
        for (int i = 0; i < n; i++) {
            long bytes = len[i];
            if (bytes == 0) {
                continue;
            }
            boolean toDevice = to[i] != CudaDriver.HOST;
            boolean fromDevice = from[i] != CudaDriver.HOST;
            if (isGatherEntry(to[i], from[i], bytes)) {
                gather.add(dst[i], src[i], bytes, stream);
            } else if (toDevice && fromDevice) {
                CudaDriver.check(cuMemcpyDtoDAsync(Pointers.device(dst[i]), Pointers.device(src[i]), bytes, stream), "cuMemcpyDtoDAsync");
            } else if (toDevice) {
                CudaDriver.check(cuMemcpyHtoDAsync(Pointers.device(dst[i]), Pointers.host(src[i]), bytes, stream), "cuMemcpyHtoDAsync");
            } else if (fromDevice) {
                CudaDriver.check(cuMemcpyDtoHAsync(Pointers.host(dst[i]), Pointers.device(src[i]), bytes, stream), "cuMemcpyDtoHAsync");
            } else {
                // host to host: unified addressing lets the driver copy it in stream order
                CudaDriver.check(cuMemcpyAsync(Pointers.device(dst[i]), Pointers.device(src[i]), bytes, stream), "cuMemcpyAsync");
            }
        }
        return gather.flush(batch, stream);
    }

    private CUevent newEvent() {
        CUevent event = new CUevent();
        CudaDriver.check(cuEventCreate(event, CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate");
        return event;
    }

    /**
     * The launching thread: launches the ring lists handed to it, in order. Its own thread, so
     * making the primary context current here is no side effect. A launch that fails fails its
     * batch (the completion thread reports it).
     */
    private void launchInOrder() {
        try {
            CudaDriver.check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
            for (Pending p; (p = launches.next()) != null; ) {
                try {
                    gather.launch(p.list, stream);
                } catch (MooncakeException e) {
                    p.launchFailure = e;
                }
                launched = p.batch; // publishes launchFailure, and frees the list
            }
        } catch (RuntimeException | Error e) {
            LOG.error("the launching thread of the CUDA copier of cuda:{} stopped", device, e);
            broken = e; // the completion thread fails what it was waiting to launch
        }
    }

    /** The completion thread: its own thread, so making the primary context current here is no side effect. */
    private void completeInOrder() {
        Pending p = null;
        try {
            CudaDriver.check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
            while ((p = pending.next()) != null) {
                await(p);
            }
        } catch (RuntimeException | Error e) {
            stop(p, e);
        }
    }

    /** Fails what is waiting, and every later copy, when the completion thread cannot go on. */
    private void stop(Pending current, Throwable cause) {
        broken = cause;
        if (current != null) {
            current.done.completeExceptionally(stopped(cause)); // no-op if it was completed already
        }
        synchronized (lock) {
            for (Pending p; (p = pending.poll()) != null; ) {
                p.done.completeExceptionally(stopped(cause));
            }
        }
    }

    private MooncakeException stopped(Throwable cause) {
        return new MooncakeException(ErrorCode.IO, "the completion thread of the CUDA copier of cuda:" + device + " stopped: " + cause, cause);
    }

    private void await(Pending p) {
        for (int polls = 0; ; polls++) {
            int result = isDone(p, polls);
            if (result == CUresult.CUDA_SUCCESS) {
                if (p.event != null) {
                    idleEvents.add(p.event);
                }
                p.done.complete(null);
                return;
            }
            if (result == LAUNCH_FAILED) {
                p.done.completeExceptionally(p.launchFailure);
                return;
            }
            if (result != CUresult.CUDA_ERROR_NOT_READY) {
                p.done.completeExceptionally(new MooncakeException(
                        ErrorCode.TRANSFER_FAILED, "a copy on cuda:" + device + " failed: " + CudaDriver.errorName(result)));
                return;
            }
            if (launched < p.batch && broken != null) { // the launching thread stopped before launching it
                p.done.completeExceptionally(stopped(broken));
                return;
            }
            if (System.nanoTime() - p.deadline > 0) {
                p.done.completeExceptionally(new MooncakeException(
                        ErrorCode.TRANSFER_FAILED,
                        "a copy batch on cuda:" + device + " was not done within " + TimeUnit.NANOSECONDS.toSeconds(COMPLETION_BOUND_NANOS) + " s"));
                return;
            }
            if (polls < POLLS_BEFORE_PARKING) {
                for (int i = 0; i < SPINS_BETWEEN_POLLS; i++) {
                    Thread.onSpinWait();
                }
            } else {
                LockSupport.parkNanos(PARK_NANOS);
            }
        }
    }

    /**
     * SUCCESS, NOT_READY, {@link #LAUNCH_FAILED} or the driver's error. A kernel-signalled batch is
     * read from host memory once it is launched; now and then the stream is asked too, so that a
     * device error (which no kernel would signal) still ends the wait at once, and an idle stream
     * means done whatever the signal says.
     */
    private int isDone(Pending p, int polls) {
        if (p.event != null) {
            return cuEventQuery(p.event);
        }
        if (launched < p.batch) {
            return CUresult.CUDA_ERROR_NOT_READY; // still with the launching thread
        }
        if (p.launchFailure != null) {
            return LAUNCH_FAILED;
        }
        if (gather.signalled() >= p.batch) {
            return CUresult.CUDA_SUCCESS;
        }
        return polls % STREAM_QUERY_EVERY == STREAM_QUERY_EVERY - 1 ? cuStreamQuery(stream) : CUresult.CUDA_ERROR_NOT_READY;
    }

    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
        }
        LockSupport.unpark(launcher);
        LockSupport.unpark(completer);
        try {
            launcher.join(TimeUnit.NANOSECONDS.toMillis(COMPLETION_BOUND_NANOS));
            completer.join(TimeUnit.NANOSECONDS.toMillis(COMPLETION_BOUND_NANOS) + 1_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (completer.isAlive() || launcher.isAlive()) {
            LOG.warn("the CUDA copier of cuda:{} still has copies in flight after {} s; its stream is left allocated",
                    device, TimeUnit.NANOSECONDS.toSeconds(COMPLETION_BOUND_NANOS));
            return;
        }
        try (ContextScope ignored = driver.enter(device)) {
            for (CUevent e; (e = idleEvents.poll()) != null; ) {
                cuEventDestroy(e);
            }
            gather.unload();
            CudaDriver.check(cuStreamDestroy(stream), "cuStreamDestroy");
        }
    }

    /**
     * Batches handed to one of the copier's threads, which takes them in order ({@link #next}):
     * when it runs dry it spins about a millisecond (a pipelining caller submits again within
     * microseconds), then parks until {@link #add} or {@link #wake} wakes it.
     */
    private final class BatchQueue {
        private final ConcurrentLinkedQueue<Pending> queue = new ConcurrentLinkedQueue<>();
        private volatile boolean parked;

        void add(Pending p, Thread taker) {
            queue.add(p);
            wake(taker);
        }

        void wake(Thread taker) {
            if (parked) {
                LockSupport.unpark(taker);
            }
        }

        Pending poll() {
            return queue.poll();
        }

        /** The next batch, waiting for one; null once the copier is closed and the queue empty. */
        Pending next() {
            for (int idle = 0; ; idle++) {
                Pending p = queue.poll();
                if (p != null) {
                    return p;
                }
                if (closed && queue.isEmpty()) { // nothing is added once closed is set
                    return null;
                }
                if (idle < IDLE_SPINS) {
                    Thread.onSpinWait();
                } else {
                    parked = true;
                    if (queue.isEmpty() && !closed) {
                        LockSupport.parkNanos(IDLE_PARK_NANOS);
                    }
                    parked = false;
                }
            }
        }
    }

    /** {@link #isDone}: the launching thread could not launch the batch ({@link Pending#launchFailure}). */
    private static final int LAUNCH_FAILED = -1;

    /** A batch on its way: {@code list} is its ring list (-1 when its caller enqueued it). */
    private static final class Pending {
        final CUevent event;
        final CompletableFuture<Void> done;
        final long batch;
        final int list;
        final long deadline;
        /** Set by the launching thread before it publishes {@link #launched}. */
        MooncakeException launchFailure;

        Pending(CUevent event, CompletableFuture<Void> done, long batch, int list, long deadline) {
            this.event = event;
            this.done = done;
            this.batch = batch;
            this.list = list;
            this.deadline = deadline;
        }
    }
}
