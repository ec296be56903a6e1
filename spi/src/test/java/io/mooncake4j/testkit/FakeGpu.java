package io.mooncake4j.testkit;

import io.mooncake4j.MemoryLocation;
import io.mooncake4j.nativeio.NativeMemory;
import io.mooncake4j.spi.DeviceAllocation;
import io.mooncake4j.spi.DeviceCopier;
import io.mooncake4j.spi.DeviceMemoryProvider;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * anonymous host memory that it marks as {@code cuda:0}, and its copier memmoves on its own thread,
 * as a GPU copier completes on its own. Engines created inside {@link #installedFor} find it through
 * the thread context classloader, as they would find {@code mooncake4j-gpu-cuda}; other engines of
 * the test JVM never see it.
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
    /** When set, copies wait (at most 10 s) until it opens: a copy still running on the "device". */
    public static volatile java.util.concurrent.CountDownLatch gate;
    private static final Map<Long, Long> DEVICE = new ConcurrentSkipListMap<>(); // start -> end

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

    /** Host memory that the fake provider calls {@code cuda:0}. */
    public static DeviceAllocation allocateDevice(long bytes) {
        long address = NativeMemory.map(bytes);
        DEVICE.put(address, address + bytes);
        AtomicInteger closed = new AtomicInteger();
        return new DeviceAllocation() {
            @Override
            public long address() {
                return address;
            }

            @Override
            public long length() {
                return bytes;
            }

            @Override
            public MemoryLocation location() {
                return MemoryLocation.cuda(0);
            }

            @Override
            public void close() {
                if (closed.getAndIncrement() == 0) {
                    DEVICE.remove(address);
                    NativeMemory.unmap(address, bytes);
                }
            }
        };
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
        return 1;
    }

    @Override
    public MemoryLocation locate(long address) {
        for (Map.Entry<Long, Long> r : DEVICE.entrySet()) {
            if (address >= r.getKey() && address < r.getValue()) {
                return MemoryLocation.cuda(0);
            }
        }
        return MemoryLocation.CPU;
    }

    @Override
    public DeviceAllocation allocate(MemoryLocation location, long bytes) {
        return allocateDevice(bytes);
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
}
