package io.mooncake4j.samples.cli;

import java.io.IOException;
import java.io.InputStream;

/**
 * Runs an action when a stream (standard input) reaches its end: how a child process follows a
 * parent that holds a pipe to it and exits or dies.
 */
public final class StdinWatch {
    private StdinWatch() {}

    /** Starts a daemon thread that reads {@code in} to its end (or an error), then runs {@code onClose}. */
    public static void onClose(InputStream in, Runnable onClose) {
        Thread t = new Thread(() -> {
            byte[] buf = new byte[256];
            try {
                while (in.read(buf) >= 0) {
                    // discard: only the end of the stream matters
                }
            } catch (IOException e) {
                // a broken stream counts as closed
            }
            onClose.run();
        }, "mooncake4j-stdin-watch");
        t.setDaemon(true);
        t.start();
    }
}
