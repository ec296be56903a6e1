package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventQuery;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.DeviceStager;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Copies between device memory and pinned host memory for a transport: {@code cuMemcpyDtoHAsync} /
 * {@code cuMemcpyHtoDAsync} (the direction always named: JCuda refuses the default kind) on a
 * non-blocking stream of the device's primary context, one stream per device made on first use,
 * each copy followed by an event of its own (a ring of {@value DeviceStager#MAX_IN_FLIGHT}), which
 * {@link #await} polls, so nothing blocks without a bound. Every call pushes the device's primary
 * context and pops it after ({@link ContextScope}): the caller's current context and device are
 * unchanged. Confined to one thread at a time.
 */
final class CudaStager implements DeviceStager {
    static final long BOUND_NANOS = TimeUnit.SECONDS.toNanos(30);
    private static final Logger LOG = LoggerFactory.getLogger(CudaStager.class);
    // a 512 KiB copy takes 10-30 us: poll without parking for about that long, then park briefly
    private static final int SPIN_POLLS = 2_000;
    private static final long PARK_NANOS = 10_000;

    private final CudaDriver driver;
    private final CUstream[] streams; // per device, made on first use
    private final CUevent[] events = new CUevent[MAX_IN_FLIGHT];
    private final int[] eventDevice = new int[MAX_IN_FLIGHT];
    private final long[] eventTicket = new long[MAX_IN_FLIGHT]; // the ticket recorded there; 0 once awaited
    private long issued;
    private boolean closed;

    CudaStager(CudaDriver driver) {
        this.driver = driver;
        this.streams = new CUstream[driver.deviceCount()];
    }

    @Override
    public long toHost(long host, long device, long length) {
        return enqueue(false, host, device, length);
    }

    @Override
    public long toDevice(long device, long host, long length) {
        return enqueue(true, host, device, length);
    }

    private long enqueue(boolean toDevice, long host, long device, long length) {
        if (closed) {
            throw new MooncakeException(ErrorCode.CLOSED, "the CUDA stager was closed");
        }
        if (length <= 0) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "a staged copy needs a positive length, not " + length);
        }
        long ticket = issued + 1;
        int slot = (int) (ticket % MAX_IN_FLIGHT);
        if (eventTicket[slot] != 0) {
            await(eventTicket[slot]); // at most MAX_IN_FLIGHT copies in flight
        }
        int dev = deviceOf(device);
        try (ContextScope ignored = driver.enter(dev)) {
            CUstream stream = stream(dev);
            if (toDevice) {
                CudaDriver.check(cuMemcpyHtoDAsync(Pointers.device(device), Pointers.host(host), length, stream), "cuMemcpyHtoDAsync");
            } else {
                CudaDriver.check(cuMemcpyDtoHAsync(Pointers.host(host), Pointers.device(device), length, stream), "cuMemcpyDtoHAsync");
            }
            CudaDriver.check(cuEventRecord(event(slot, dev), stream), "cuEventRecord");
        }
        eventTicket[slot] = ticket;
        issued = ticket;
        return ticket;
    }

    /** The device of {@code address}, which must be device memory. */
    private int deviceOf(long address) {
        DeviceRanges.Range range = driver.ranges().find(address);
        if (range == null) {
            try (ContextScope ignored = driver.enter(0)) {
                range = driver.rangeOf(address);
            }
        }
        if (range == null) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "0x" + Long.toHexString(address)
                    + " is host memory, not device memory: a staged copy needs a device side");
        }
        return range.device();
    }

    private CUstream stream(int dev) {
        if (streams[dev] == null) {
            CUstream s = new CUstream();
            CudaDriver.check(cuStreamCreate(s, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
            streams[dev] = s;
        }
        return streams[dev];
    }

    /** The slot's event, made in {@code dev}'s context (current); remade when it belonged to another device. */
    private CUevent event(int slot, int dev) {
        CUevent e = events[slot];
        if (e != null && eventDevice[slot] != dev) {
            try (ContextScope ignored = driver.enter(eventDevice[slot])) {
                cuEventDestroy(e);
            }
            e = null;
        }
        if (e == null) {
            e = new CUevent();
            CudaDriver.check(cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate");
            events[slot] = e;
            eventDevice[slot] = dev;
        }
        return e;
    }

    @Override
    public void await(long ticket) {
        if (ticket <= 0 || ticket > issued) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT, "no staged copy has ticket " + ticket + " (issued: " + issued + ")");
        }
        int slot = (int) (ticket % MAX_IN_FLIGHT);
        if (eventTicket[slot] != ticket) {
            return; // awaited already (a slot is reused only after its copy was awaited)
        }
        int dev = eventDevice[slot];
        long deadline = System.nanoTime() + BOUND_NANOS;
        try (ContextScope ignored = driver.enter(dev)) {
            for (int polls = 0; ; polls++) {
                int result = cuEventQuery(events[slot]);
                if (result == CUresult.CUDA_SUCCESS) {
                    break;
                }
                if (result != CUresult.CUDA_ERROR_NOT_READY) {
                    eventTicket[slot] = 0;
                    throw new MooncakeException(ErrorCode.TRANSFER_FAILED,
                            "a staged copy on cuda:" + dev + " failed: " + CudaDriver.errorName(result));
                }
                if (System.nanoTime() - deadline > 0) {
                    eventTicket[slot] = 0;
                    throw new MooncakeException(ErrorCode.TRANSFER_FAILED, "a staged copy on cuda:" + dev
                            + " was not done within " + TimeUnit.NANOSECONDS.toSeconds(BOUND_NANOS) + " s");
                }
                if (polls < SPIN_POLLS) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.parkNanos(PARK_NANOS);
                }
            }
        }
        eventTicket[slot] = 0;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (int slot = 0; slot < MAX_IN_FLIGHT; slot++) {
            if (eventTicket[slot] != 0) {
                try {
                    await(eventTicket[slot]);
                } catch (MooncakeException e) {
                    LOG.debug("a staged copy failed while its stager closed: {}", e.getMessage());
                }
            }
        }
        for (int slot = 0; slot < MAX_IN_FLIGHT; slot++) {
            if (events[slot] != null) {
                try (ContextScope ignored = driver.enter(eventDevice[slot])) {
                    cuEventDestroy(events[slot]);
                }
                events[slot] = null;
            }
        }
        for (int dev = 0; dev < streams.length; dev++) {
            if (streams[dev] != null) {
                try (ContextScope ignored = driver.enter(dev)) {
                    CudaDriver.check(cuStreamDestroy(streams[dev]), "cuStreamDestroy");
                }
                streams[dev] = null;
            }
        }
    }
}
