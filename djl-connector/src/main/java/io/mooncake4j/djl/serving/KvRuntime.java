package io.mooncake4j.djl.serving;

import ai.djl.ndarray.NDManager;
import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.connector.KvConnector;
import io.mooncake4j.djl.connector.KvConnectorConfig;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.PagedKvPool;
import io.mooncake4j.djl.llama.LlamaConfig;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A prefill or decode worker's KV machinery, wired the same way in every host (DJL Serving's
 * {@link KvTransferTranslator}, the PD app's workers): one paged KV pool sized for the model and
 * registered once with a transfer engine, and the {@link KvConnector} that moves requests' blocks.
 * Closes the connector, then the pool, then the engine when it owns it.
 */
public final class KvRuntime implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KvRuntime.class);

    private final TransferEngine engine;
    private final boolean ownsEngine;
    private final PagedKvPool pool;
    private final KvConnector connector;
    private final AtomicBoolean closed = new AtomicBoolean();

    private KvRuntime(TransferEngine engine, boolean ownsEngine, PagedKvPool pool, KvConnector connector) {
        this.engine = engine;
        this.ownsEngine = ownsEngine;
        this.pool = pool;
        this.connector = connector;
    }

    /**
     * Creates an engine from {@code engineConfig} that this runtime owns and closes, then wires it
     * as {@link #on} does.
     */
    public static KvRuntime start(EngineConfig engineConfig, KvConnectorConfig kvConfig, LlamaConfig model,
            NDManager manager) {
        TransferEngine engine = TransferEngine.create(engineConfig);
        try {
            return wire(engine, true, kvConfig, model, manager);
        } catch (RuntimeException e) {
            engine.close();
            throw e;
        }
    }

    /**
     * Allocates a pool for the model's KV geometry (at least one request of the model's whole
     * context), where {@code MC_KV_LOCATION} says (host memory or {@code cuda:N}), on an engine that
     * others share and this runtime leaves open, and creates the connector.
     *
     * @param engine the engine to register the pool with
     * @param kvConfig the connector's settings ({@code MC_KV_*})
     * @param model the model's geometry
     * @param manager the manager the connector's NDArray views belong to
     * @return the runtime
     */
    public static KvRuntime on(TransferEngine engine, KvConnectorConfig kvConfig, LlamaConfig model, NDManager manager) {
        return wire(engine, false, kvConfig, model, manager);
    }

    private static KvRuntime wire(TransferEngine engine, boolean ownsEngine, KvConnectorConfig kvConfig,
            LlamaConfig model, NDManager manager) {
        KvLayout layout = kvConfig.layout(model.nLayers(), model.nKvHeads(), model.headSize());
        int needed = layout.blocksFor(model.seqLen());
        if (layout.numBlocks() < needed) {
            LOG.warn("a KV pool of {} blocks holds {} positions, less than the model's context of {}: using {} blocks"
                    + " ({} MiB)", layout.numBlocks(), layout.tokenCapacity(), model.seqLen(), needed,
                    layout.withNumBlocks(needed).totalBytes() >> 20);
            layout = layout.withNumBlocks(needed);
        }
        PagedKvPool pool = PagedKvPool.allocate(engine, layout, kvConfig.location());
        try {
            return new KvRuntime(engine, ownsEngine, pool, KvConnector.create(pool, kvConfig, manager));
        } catch (RuntimeException e) {
            pool.close();
            throw e;
        }
    }

    /** The engine. */
    public TransferEngine engine() {
        return engine;
    }

    /** The pool. */
    public PagedKvPool pool() {
        return pool;
    }

    /** The connector. */
    public KvConnector connector() {
        return connector;
    }

    /** The KV part of a health answer: segment, protocol, layout, free blocks. */
    public JsonObject describe() {
        JsonObject o = new JsonObject();
        o.addProperty("segment", engine.localSegmentName());
        o.addProperty("protocol", engine.protocol());
        o.add("layout", pool.layout().toJson());
        o.addProperty("pool_bytes", pool.layout().totalBytes());
        o.addProperty("pool_location", pool.location().toString());
        o.addProperty("free_blocks", pool.allocator().freeBlocks());
        o.addProperty("used_blocks", pool.allocator().usedBlocks());
        return o;
    }

    /** Closes the connector, the pool and, when this runtime created it, the engine. Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            connector.close();
        } catch (RuntimeException e) {
            LOG.warn("closing the KV connector failed", e);
        }
        try {
            pool.close();
        } catch (RuntimeException e) {
            LOG.warn("closing the KV pool failed", e);
        }
        if (ownsEngine) {
            engine.close();
        }
    }

    @Override
    public String toString() {
        return "KvRuntime[" + engine.localSegmentName() + ", " + pool.layout() + "]";
    }
}
