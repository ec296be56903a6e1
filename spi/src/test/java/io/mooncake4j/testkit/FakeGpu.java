package io.mooncake4j.testkit;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceCopier;
import io.mooncake4j.spi.DeviceIpcHandle;
import io.mooncake4j.spi.DeviceIpcMapping;
import io.mooncake4j.spi.DeviceMemoryProvider;
import io.mooncake4j.spi.DeviceStager;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.net.URL;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * A {@code cuda} provider for CPU-only tests of the engine's device wiring: "device memory" is
 * anonymous host memory that it marks as {@code cuda:0} (or {@code cuda:1}: it has two devices),
 * and its copier memmoves on its own thread, as a GPU copier completes on its own. Engines created inside {@link #installedFor} find it through
 * the thread context classloader, as they would find {@code mooncake4j-gpu-cuda}; other engines of
 * the test JVM never see it.
 *
 * <p>CUDA IPC, faked honestly across processes: with {@link #sharing} on (system property {@code
 * mooncake4j.fakegpu.ipc=true} in a child JVM) "device memory" is a file-backed shared mapping in
 * {@code /dev/shm}; the exported handle names that file, and a peer on the same host that opens it
 * maps the same pages, so bytes it copies land in the exporter's memory.
 */
public final class FakeGpu extends DeviceMemoryProvider {
    /** The name of the fake copier's thread. */
    public static final String COPIER_THREAD = "fake-gpu-copier";
    /** Calls of {@link DeviceCopier#copy} on any fake copier. */
    public static final AtomicInteger COPY_CALLS = new AtomicInteger();
    /** Bytes passed to {@link #forget}. */
    public static final AtomicLong FORGOTTEN_BYTES = new AtomicLong();
    /** Calls of {@link #inDeviceContext}, and the device current on each thread inside one (-1: none). */
    public static final AtomicInteger CONTEXT_SCOPES = new AtomicInteger();
    private static final ThreadLocal<Integer> CURRENT_DEVICE = ThreadLocal.withInitial(() -> -1);
    /**
     * When set, copies (the copier's and the stagers') wait (at most 10 s) until it opens: a copy
     * still running on the "device".
     */
    public static volatile java.util.concurrent.CountDownLatch gate;

    /** Opens the {@link #gate}, if any, and clears it: the copies it holds run, later ones do not wait. */
    public static void openGate() {
        java.util.concurrent.CountDownLatch g = gate;
        gate = null;
        if (g != null) {
            g.countDown();
        }
    }
    /**
     * When set, copies move no byte and their futures are complete when {@code copy} returns (the
     * engine's own cost per batch, as {@code DeviceLoopbackBench} measures it).
     */
    public static volatile boolean instant;
    private static final Map<Long, Long> DEVICE = new ConcurrentSkipListMap<>(); // start -> end
    private static final Map<Long, Integer> DEVICE_INDEX = new ConcurrentSkipListMap<>(); // start -> N of cuda:N
    /** Whether new "device memory" is shared and exportable (IPC); off by default. */
    public static volatile boolean sharing = Boolean.getBoolean("mooncake4j.fakegpu.ipc");
    /** When set, {@link #openIpc} fails with this reason (another IPC namespace, say). */
    public static volatile String ipcOpenFailure;
    /** Peer buffers mapped by {@link #openIpc}, and those unmapped again. */
    public static final AtomicInteger IPC_OPENS = new AtomicInteger();
    public static final AtomicInteger IPC_CLOSES = new AtomicInteger();
    /** The device name the fake publishes in its handles (a real provider: the PCI bus id). */
    public static final String DEVICE_ID = "fake-gpu:0";
    private static final Map<Long, SharedFile> SHARED = new ConcurrentSkipListMap<>(); // base -> file

    /** Runs {@code create} (an engine's creation) where the engine finds this provider. */
    public static <T> T installedFor(Supplier<T> create) {
        Thread t = Thread.currentThread();
        ClassLoader before = t.getContextClassLoader();
        t.setContextClassLoader(new ServiceLoaderView(FakeGpu.class.getClassLoader()));
        try {
            return create.get();
        } finally {
            t.setContextClassLoader(before);
        }
    }

    /** Host memory that the fake provider calls {@code cuda:0}; shared and exportable with {@link #sharing}. */
    public static DeviceAllocation allocateDevice(long bytes) {
        return allocateDevice(bytes, 0);
    }

    /** Host memory that the fake provider calls {@code cuda:device} (it has devices 0 and 1). */
    public static DeviceAllocation allocateDevice(long bytes, int device) {
        SharedFile shared = sharing ? SharedFile.create(bytes) : null;
        long address = shared != null ? shared.address : NativeMemory.map(bytes);
        if (shared != null) {
            SHARED.put(address, shared);
        }
        DEVICE.put(address, address + bytes);
        DEVICE_INDEX.put(address, device);
        return new FakeRange(address, bytes, MemoryLocation.cuda(device), () -> {
            DEVICE.remove(address);
            DEVICE_INDEX.remove(address);
            if (shared != null) {
                SHARED.remove(address);
                shared.close();
                shared.delete();
            } else {
                NativeMemory.unmap(address, bytes);
            }
        });
    }

    @Override
    public String kind() {
        return "cuda";
    }

    @Override
    public boolean isAvailable() {
        return true;
    }

    @Override
    public int deviceCount() {
        return 2;
    }

    @Override
    public MemoryLocation locate(long address) {
        for (Map.Entry<Long, Long> r : DEVICE.entrySet()) {
            if (address >= r.getKey() && address < r.getValue()) {
                return MemoryLocation.cuda(DEVICE_INDEX.getOrDefault(r.getKey(), 0));
            }
        }
        return MemoryLocation.CPU;
    }

    @Override
    public DeviceAllocation allocate(MemoryLocation location, long bytes) {
        return allocateDevice(bytes, location.index());
    }

    @Override
    public DeviceCopier openCopier(int device) {
        ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, COPIER_THREAD);
            t.setDaemon(true);
            return t;
        });
        return new DeviceCopier() {
            @Override
            public CompletableFuture<Void> copy(long[] dst, long[] src, long[] len, int n) {
                COPY_CALLS.incrementAndGet();
                if (instant) {
                    return CompletableFuture.completedFuture(null);
                }
                long[] d = dst.clone();
                long[] s = src.clone();
                long[] l = len.clone();
                java.util.concurrent.CountDownLatch g = gate;
                return CompletableFuture.runAsync(() -> {
                    awaitQuietly(g);
                    for (int i = 0; i < n; i++) {
                        NativeMemory.copy(d[i], s[i], l[i]);
                    }
                }, thread);
            }

            @Override
            public void close() {
                thread.shutdown();
                try {
                    thread.awaitTermination(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
    }

    private static void awaitQuietly(java.util.concurrent.CountDownLatch g) {
        if (g == null) {
            return;
        }
        try {
            g.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The "device" whose context {@link #inDeviceContext} made current on this thread, or -1. */
    public static int currentDevice() {
        return CURRENT_DEVICE.get();
    }

    @Override
    public <T> T inDeviceContext(int device, Supplier<T> work) {
        CONTEXT_SCOPES.incrementAndGet();
        int before = CURRENT_DEVICE.get();
        CURRENT_DEVICE.set(device);
        try {
            return work.get();
        } finally {
            CURRENT_DEVICE.set(before);
        }
    }

    @Override
    public void forget(long address, long length) {
        FORGOTTEN_BYTES.addAndGet(length);
    }

    /** The handle names the shared file holding the region; anonymous "device memory" cannot be exported. */
    @Override
    public DeviceIpcHandle exportIpc(long address, long length) {
        if (!sharing) {
            return null;
        }
        for (SharedFile f : SHARED.values()) {
            if (address >= f.address && address + length <= f.address + f.length) {
                byte[] name = f.path.toString().getBytes(StandardCharsets.UTF_8);
                return new DeviceIpcHandle(Arrays.copyOf(name, DeviceIpcHandle.HANDLE_BYTES), address - f.address, DEVICE_ID);
            }
        }
        throw new MooncakeException(ErrorCode.REGISTRATION, "0x" + Long.toHexString(address) + " is not shared fake device memory");
    }

    /** Maps the file the handle names, checking that the buffer lies inside it. */
    @Override
    public DeviceIpcMapping openIpc(DeviceIpcHandle handle, long length) {
        String failure = ipcOpenFailure;
        if (failure != null) {
            throw new MooncakeException(ErrorCode.IO, failure);
        }
        if (!handle.device().equals(DEVICE_ID)) {
            throw new MooncakeException(ErrorCode.IO, "no device " + handle.device() + " here");
        }
        byte[] raw = handle.handle();
        int end = 0;
        while (end < raw.length && raw[end] != 0) {
            end++;
        }
        SharedFile f = SharedFile.open(Path.of(new String(raw, 0, end, StandardCharsets.UTF_8)));
        if (handle.offset() + length > f.length) {
            f.close();
            throw new MooncakeException(ErrorCode.IO, "the buffer (offset " + handle.offset() + ", " + length
                    + " bytes) is not inside the exported allocation of " + f.length + " bytes");
        }
        IPC_OPENS.incrementAndGet();
        return new FakeRange(f.address + handle.offset(), length, MemoryLocation.cuda(0), () -> {
            f.close();
            IPC_CLOSES.incrementAndGet();
        });
    }

    /** Fake memory: a device allocation, a peer's buffer mapped here, or pinned host memory; released once. */
    private static final class FakeRange implements DeviceAllocation, DeviceIpcMapping {
        private final long address;
        private final long length;
        private final MemoryLocation location;
        private final Runnable release;
        private final AtomicInteger closed = new AtomicInteger();

        FakeRange(long address, long length, MemoryLocation location, Runnable release) {
            this.address = address;
            this.length = length;
            this.location = location;
            this.release = release;
        }

        @Override
        public long address() {
            return address;
        }

        @Override
        public long length() {
            return length;
        }

        @Override
        public MemoryLocation location() {
            return location;
        }

        @Override
        public void close() {
            if (closed.getAndIncrement() == 0) {
                release.run();
            }
        }
    }

    /** A file in /dev/shm mapped shared: the fake's exportable "device memory". */
    private static final class SharedFile {
        private static final AtomicInteger COUNT = new AtomicInteger();
        final Path path;
        final long address;
        final long length;
        private final MappedByteBuffer buffer;

        private SharedFile(Path path, MappedByteBuffer buffer) {
            this.path = path;
            this.buffer = buffer;
            this.address = NativeMemory.address(buffer);
            this.length = buffer.capacity();
        }

        static SharedFile create(long bytes) {
            Path dir = Files.isDirectory(Path.of("/dev/shm")) ? Path.of("/dev/shm") : Path.of(System.getProperty("java.io.tmpdir"));
            Path p = dir.resolve("fake-gpu-" + ProcessHandle.current().pid() + "-" + COUNT.incrementAndGet());
            try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
                f.setLength(bytes);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            p.toFile().deleteOnExit();
            return open(p);
        }

        static SharedFile open(Path p) {
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                return new SharedFile(p, ch.map(FileChannel.MapMode.READ_WRITE, 0, ch.size()));
            } catch (IOException e) {
                throw new MooncakeException(ErrorCode.IO, "cannot map " + p + ": " + e);
            }
        }

        /** Unmaps it now (a copy through it afterwards would fault: the engine must never do one). */
        void close() {
            try {
                Class<?> unsafe = Class.forName("sun.misc.Unsafe");
                java.lang.reflect.Field f = unsafe.getDeclaredField("theUnsafe");
                f.setAccessible(true);
                unsafe.getMethod("invokeCleaner", java.nio.ByteBuffer.class).invoke(f.get(null), buffer);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot unmap " + path, e);
            }
        }

        void delete() {
            try {
                Files.deleteIfExists(path);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** A classloader that adds a services file naming {@link FakeGpu} to its parent's resources. */
    private static final class ServiceLoaderView extends ClassLoader {
        private static final String SERVICE = "META-INF/services/" + DeviceMemoryProvider.class.getName();

        ServiceLoaderView(ClassLoader parent) {
            super(parent);
        }

        @Override
        public Enumeration<URL> getResources(String name) throws IOException {
            if (!name.equals(SERVICE)) {
                return super.getResources(name);
            }
            return Collections.enumeration(List.of(serviceFile()));
        }

        private static URL serviceFile() {
            try {
                Path f = Files.createTempFile("fake-gpu", ".services");
                f.toFile().deleteOnExit();
                Files.writeString(f, FakeGpu.class.getName() + "\n");
                return f.toUri().toURL();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    // ---- staging (GPU-aware TCP): pinned buffers are host memory, stager copies run on their own thread

    /** The name of a fake stager's thread. */
    public static final String STAGER_THREAD = "fake-gpu-stager";
    /**
     * While positive, each staged copy (any stager of this JVM) fails and counts it down, once
     * {@link #STAGED_COPIES_BEFORE_FAILURE} copies have passed.
     */
    public static final AtomicInteger FAIL_STAGED_COPIES = new AtomicInteger();
    /** While positive, a staged copy passes and counts it down before {@link #FAIL_STAGED_COPIES} applies. */
    public static final AtomicInteger STAGED_COPIES_BEFORE_FAILURE = new AtomicInteger();
    /** Staged copies done, either direction, by every stager of this JVM. */
    public static final AtomicLong STAGED_COPIES = new AtomicLong();
    /** When positive, each staged copy takes at least this long on its stager's thread (a slow device). */
    public static volatile long stagedCopyDelayNanos;
    /**
     * The most copies one stager had enqueued and not yet done at once (the one being enqueued
     * included): how far the staging overlaps copies with each other and with the socket. Reset it
     * to 0 before measuring.
     */
    public static final AtomicLong MAX_STAGED_IN_FLIGHT = new AtomicLong();
    /** Pinned bytes allocated and not yet freed. */
    public static final AtomicLong PINNED_BYTES = new AtomicLong();
    private static final Map<Long, Long> PINNED = new ConcurrentSkipListMap<>(); // start -> end

    @Override
    public DeviceAllocation allocatePinned(long bytes) {
        long address = NativeMemory.map(bytes);
        PINNED.put(address, address + bytes);
        PINNED_BYTES.addAndGet(bytes);
        return new FakeRange(address, bytes, MemoryLocation.CPU, () -> {
            PINNED.remove(address);
            PINNED_BYTES.addAndGet(-bytes);
            NativeMemory.unmap(address, bytes);
        });
    }

    /**
     * A stager whose copies memmove on its own thread, in order. Like a real one it refuses a device
     * side that is not device memory and a host side that is not pinned memory, and after a failed
     * copy it fails every later one (a CUDA stream error is sticky too).
     */
    @Override
    public DeviceStager openStager() {
        return new FakeStager();
    }

    private static boolean inside(Map<Long, Long> ranges, long address, long length) {
        for (Map.Entry<Long, Long> r : ranges.entrySet()) {
            if (address >= r.getKey() && address + length <= r.getValue()) {
                return true;
            }
        }
        return false;
    }

    private static final class FakeStager implements DeviceStager {
        private final ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, STAGER_THREAD);
            t.setDaemon(true);
            return t;
        });
        private final AtomicLong done = new AtomicLong();
        private volatile long failedTicket = Long.MAX_VALUE;
        private volatile String failure;
        private long issued;
        private boolean closed;

        @Override
        public long toHost(long host, long device, long length) {
            return enqueue(host, device, length, device, host);
        }

        @Override
        public long toDevice(long device, long host, long length) {
            return enqueue(device, host, length, device, host);
        }

        private long enqueue(long dst, long src, long length, long device, long host) {
            if (closed) {
                throw new MooncakeException(ErrorCode.CLOSED, "the fake stager was closed");
            }
            if (!inside(DEVICE, device, length)) {
                throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "0x" + Long.toHexString(device) + " is not fake device memory");
            }
            if (!inside(PINNED, host, length)) {
                throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "0x" + Long.toHexString(host) + " is not fake pinned memory");
            }
            long ticket = ++issued;
            if (ticket - done.get() > MAX_IN_FLIGHT) {
                await(ticket - MAX_IN_FLIGHT);
            }
            MAX_STAGED_IN_FLIGHT.accumulateAndGet(ticket - done.get(), Math::max);
            java.util.concurrent.CountDownLatch g = gate;
            long delay = stagedCopyDelayNanos;
            thread.execute(() -> {
                awaitQuietly(g);
                if (delay > 0) {
                    java.util.concurrent.locks.LockSupport.parkNanos(delay);
                }
                if (failedTicket == Long.MAX_VALUE) {
                    if (STAGED_COPIES_BEFORE_FAILURE.getAndUpdate(n -> Math.max(0, n - 1)) == 0
                            && FAIL_STAGED_COPIES.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
                        failure = "injected copy failure (FakeGpu.FAIL_STAGED_COPIES)";
                        failedTicket = ticket;
                    } else {
                        NativeMemory.copy(dst, src, length);
                        STAGED_COPIES.incrementAndGet();
                    }
                }
                done.set(ticket);
            });
            return ticket;
        }

        @Override
        public void await(long ticket) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (true) {
                if (ticket >= failedTicket) {
                    throw new MooncakeException(ErrorCode.TRANSFER_FAILED, "a staged copy failed: " + failure);
                }
                if (done.get() >= ticket) {
                    return;
                }
                if (System.nanoTime() - deadline > 0) {
                    throw new MooncakeException(ErrorCode.TRANSFER_FAILED, "a staged copy was not done within 30 s");
                }
                java.util.concurrent.locks.LockSupport.parkNanos(10_000);
            }
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                thread.shutdown();
                try {
                    thread.awaitTermination(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }
}
