package io.mooncake4j.gpu.cuda;

import java.util.Arrays;

/**
 * Known device allocations, {@code [start, end)} with their device ordinal, sorted by start, so
 * that a copy of a batch asks the driver about each allocation once rather than about each
 * pointer. Reads take an immutable snapshot without locking (a batch looks up two addresses per
 * copy); changes, which come with registration, copy it.
 */
final class DeviceRanges {
    private volatile Snapshot snapshot = new Snapshot(new long[0], new long[0], new int[0]);

    /** The known range holding {@code address}, or null. */
    Range find(long address) {
        Snapshot s = snapshot;
        int i = Arrays.binarySearch(s.starts, address);
        int at = i >= 0 ? i : -i - 2; // the last range starting at or before address
        return at >= 0 && Long.compareUnsigned(address, s.ends[at]) < 0 ? s.ranges[at] : null;
    }

    /** Records {@code [start, start + length)} on {@code device}, replacing ranges it overlaps. */
    synchronized void add(long start, long length, int device) {
        Snapshot s = without(snapshot, start, length);
        int i = -Arrays.binarySearch(s.starts, start) - 1;
        int[] devices = new int[s.devices.length + 1];
        System.arraycopy(s.devices, 0, devices, 0, i);
        devices[i] = device;
        System.arraycopy(s.devices, i, devices, i + 1, s.devices.length - i);
        snapshot = new Snapshot(insert(s.starts, i, start), insert(s.ends, i, start + length), devices);
    }

    /** One device allocation, {@code [start, end)} on {@code device}. */
    record Range(long start, long end, int device) {
        boolean contains(long address) {
            return Long.compareUnsigned(address, start) >= 0 && Long.compareUnsigned(address, end) < 0;
        }
    }

    /** Drops every range overlapping {@code [address, address + length)}. */
    synchronized void forget(long address, long length) {
        snapshot = without(snapshot, address, length);
    }

    int size() {
        return snapshot.starts.length;
    }

    private static Snapshot without(Snapshot s, long address, long length) {
        long end = address + length;
        long[] starts = new long[s.starts.length];
        long[] ends = new long[s.starts.length];
        int[] devices = new int[s.starts.length];
        int kept = 0;
        for (int i = 0; i < s.starts.length; i++) {
            if (s.starts[i] >= end || address >= s.ends[i]) {
                starts[kept] = s.starts[i];
                ends[kept] = s.ends[i];
                devices[kept] = s.devices[i];
                kept++;
            }
        }
        return new Snapshot(Arrays.copyOf(starts, kept), Arrays.copyOf(ends, kept), Arrays.copyOf(devices, kept));
    }

    private static long[] insert(long[] a, int i, long v) {
        long[] r = new long[a.length + 1];
        System.arraycopy(a, 0, r, 0, i);
        r[i] = v;
        System.arraycopy(a, i, r, i + 1, a.length - i);
        return r;
    }

    private record Snapshot(long[] starts, long[] ends, int[] devices, Range[] ranges) {
        Snapshot(long[] starts, long[] ends, int[] devices) {
            this(starts, ends, devices, ranges(starts, ends, devices));
        }

        private static Range[] ranges(long[] starts, long[] ends, int[] devices) {
            Range[] r = new Range[starts.length];
            for (int i = 0; i < r.length; i++) {
                r[i] = new Range(starts[i], ends[i], devices[i]);
            }
            return r;
        }
    }
}
