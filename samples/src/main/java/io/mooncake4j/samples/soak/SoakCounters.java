package io.mooncake4j.samples.soak;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.LongAdder;

/** What a soak run counts, shared by its threads; the first few failures are kept with their reasons. */
final class SoakCounters {
    static final int KEPT_FAILURES = 5;
    private final LongAdder transfers = new LongAdder();
    private final LongAdder bytes = new LongAdder();
    private final LongAdder failures = new LongAdder();
    private final LongAdder corruption = new LongAdder();
    private final List<String> firstFailures = new ArrayList<>();

    void completed(long length) {
        transfers.increment();
        bytes.add(length);
    }

    void failed(String what) {
        failures.increment();
        keep(what);
    }

    void corrupted(String what) {
        corruption.increment();
        keep(what);
    }

    private void keep(String what) {
        synchronized (firstFailures) {
            if (firstFailures.size() < KEPT_FAILURES) {
                firstFailures.add(what);
            }
        }
    }

    long transfers() {
        return transfers.sum();
    }

    long bytes() {
        return bytes.sum();
    }

    long failures() {
        return failures.sum();
    }

    long corruption() {
        return corruption.sum();
    }

    /** The first failures and corruptions, with what, where and why. */
    List<String> firstFailures() {
        synchronized (firstFailures) {
            return List.copyOf(firstFailures);
        }
    }

    /** {@code transfers N, bytes B (H), failures F, corruption C}. */
    String summary() {
        long b = bytes();
        return "transfers " + transfers() + ", bytes " + b + String.format(Locale.ROOT, " (%.1f MiB)", b / 1048576.0)
                + ", failures " + failures() + ", corruption " + corruption();
    }
}
