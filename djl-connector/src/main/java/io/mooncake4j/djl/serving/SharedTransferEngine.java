package io.mooncake4j.djl.serving;

import io.mooncake4j.TransferEngine;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one {@link TransferEngine} of a process (per copy of this class: DJL Serving may load the
 * connector once per model classloader), created on first use from the environment ({@code
 * MOONCAKE_PROTOCOL}, {@code MC_*}) with a given thread context classloader, so that transport
 * plugins DJL Serving put in a model's classloader are found. Closed by a shutdown hook.
 */
public final class SharedTransferEngine {
    private static final Logger LOG = LoggerFactory.getLogger(SharedTransferEngine.class);
    private static TransferEngine engine;
    private static boolean hooked;

    private SharedTransferEngine() {}

    /**
     * The shared engine, created now if needed with {@code contextLoader} as the thread context
     * classloader during creation.
     *
     * @param contextLoader the classloader DJL Serving set for the model (null: the current one)
     * @return the engine
     */
    public static synchronized TransferEngine get(ClassLoader contextLoader) {
        if (engine == null || engine.isClosed()) {
            Thread t = Thread.currentThread();
            ClassLoader previous = t.getContextClassLoader();
            if (contextLoader != null) {
                t.setContextClassLoader(contextLoader);
            }
            try {
                engine = TransferEngine.fromEnvironment();
            } finally {
                t.setContextClassLoader(previous);
            }
            LOG.info("KV connector engine {} ({})", engine.localSegmentName(), engine.protocol());
            if (!hooked) {
                hooked = true;
                Runtime.getRuntime().addShutdownHook(new Thread(SharedTransferEngine::close, "mooncake4j-engine-close"));
            }
        }
        return engine;
    }

    /** The shared engine if it was created and is open, else null. */
    public static synchronized TransferEngine peek() {
        return engine == null || engine.isClosed() ? null : engine;
    }

    /** Closes the shared engine; the next {@link #get} creates a new one. */
    public static synchronized void close() {
        if (engine != null) {
            engine.close();
            engine = null;
        }
    }
}
