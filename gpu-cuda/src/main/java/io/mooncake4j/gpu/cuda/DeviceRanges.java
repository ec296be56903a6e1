package io.mooncake4j.gpu.cuda;

import java.util.Arrays;

/**
 * Known device allocations, {@code [start, end)} with their device ordinal, sorted by start, so
 * that a copy of a batch asks the driver about each allocation once rather than about each
 * pointer. Thread-safe.
 */
final class DeviceRanges {
    /** {@link #deviceOf} when no known range holds the address. */
    static final int UNKNOWN = Integer.MIN_VALUE;

    private long[] starts = new long[0];
    private long[] ends = new long[0];
    private int[] devices = new int[0];

    /** The device of the range holding {@code address}, or {@link #UNKNOWN}. */
    synchronized int deviceOf(long address) {
        int i = Arrays.binarySearch(starts, address);
        int at = i >= 0 ? i : -i - 2; // the last range starting at or before address
        return at >= 0 && Long.compareUnsigned(address, ends[at]) < 0 ? devices[at] : UNKNOWN;
    }

    /** Records {@code [start, start + length)} on {@code device}, replacing ranges it overlaps. */
    synchronized void add(long start, long length, int device) {
        forget(start, length);
        int i = -Arrays.binarySearch(starts, start) - 1;
        starts = insert(starts, i, start);
        ends = insert(ends, i, start + length);
        int[] d = new int[devices.length + 1];
        System.arraycopy(devices, 0, d, 0, i);
        d[i] = device;
        System.arraycopy(devices, i, d, i + 1, devices.length - i);
        devices = d;
    }

    /** Drops every range overlapping {@code [address, address + length)}. */
    synchronized void forget(long address, long length) {
        long end = address + length;
        int kept = 0;
        for (int i = 0; i < starts.length; i++) {
            boolean overlaps = starts[i] < end && address < ends[i];
            if (!overlaps) {
                starts[kept] = starts[i];
                ends[kept] = ends[i];
                devices[kept] = devices[i];
                kept++;
            }
        }
        starts = Arrays.copyOf(starts, kept);
        ends = Arrays.copyOf(ends, kept);
        devices = Arrays.copyOf(devices, kept);
    }

    synchronized int size() {
        return starts.length;
    }

    private static long[] insert(long[] a, int i, long v) {
        long[] r = new long[a.length + 1];
        System.arraycopy(a, 0, r, 0, i);
        r[i] = v;
        System.arraycopy(a, i, r, i + 1, a.length - i);
        return r;
    }
}
