package io.mooncake4j.samples.bench;

import io.mooncake4j.DeviceMemory;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.RegionAccess;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferEngine;
import java.nio.ByteBuffer;

/**
 * The local memory {@code --verify} writes from or reads into: host memory, or with {@code
 * --use_vram} device memory whose bytes are filled and checked in a host mirror ({@link
 * RegionAccess#LOCAL_ONLY}) and copied between the two by transfers to the engine's own segment,
 * so through the engine's device copier.
 */
final class VerifyArea implements AutoCloseable {
    private final TransferEngine engine;
    private final HostMemory host;
    private final DeviceMemory device;
    private final long bytes;

    private VerifyArea(TransferEngine engine, HostMemory host, DeviceMemory device, long bytes) {
        this.engine = engine;
        this.host = host;
        this.device = device;
        this.bytes = bytes;
    }

    /** {@code bytes} of registered memory on {@code where} ({@code cpu:0} or {@code cuda:N}). */
    static VerifyArea allocate(TransferEngine engine, long bytes, MemoryLocation where) {
        if (!where.isCuda()) {
            return new VerifyArea(engine, engine.allocate(bytes), null, bytes);
        }
        DeviceMemory device = engine.allocate(bytes, where);
        try {
            return new VerifyArea(engine, engine.allocate(bytes, RegionAccess.LOCAL_ONLY), device, bytes);
        } catch (RuntimeException e) {
            device.close();
            throw e;
        }
    }

    /** The address transfers use: the device memory, or the host memory. */
    long address() {
        return device != null ? device.address() : host.address();
    }

    /**
     * Host bytes of the area (the mirror of device memory): filled before {@link #toDevice},
     * checked after {@link #fromDevice}.
     */
    ByteBuffer buffer(long offset, int length) {
        return host.buffer(offset, length);
    }

    /** Copies the mirror into the device memory; nothing for host memory. */
    void toDevice() {
        if (device != null) {
            engine.write(self(), host.address(), device.address(), bytes);
        }
    }

    /** Copies the device memory into the mirror; nothing for host memory. */
    void fromDevice() {
        if (device != null) {
            engine.read(self(), host.address(), device.address(), bytes);
        }
    }

    private Segment self() {
        return engine.openSegment(engine.localSegmentName());
    }

    @Override
    public void close() {
        host.close();
        if (device != null) {
            device.close();
        }
    }
}
