package io.mooncake4j.samples.serving.worker;

import com.google.gson.JsonObject;
import io.mooncake4j.EngineConfig;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.connector.KvConnector;
import io.mooncake4j.djl.connector.KvConnectorConfig;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.PagedKvPool;
import io.mooncake4j.djl.llama.LlamaConfig;
import io.mooncake4j.samples.serving.model.ServingModel;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A worker's KV machinery: a transfer engine, one paged KV pool registered with it once, and the
 * connector that moves requests' blocks between prefill and decode workers. Closes in reverse
 * order.
 */
public final class KvRuntime implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KvRuntime.class);

    private final TransferEngine engine;
    private final PagedKvPool pool;
    private final KvConnector connector;
    private final AtomicBoolean closed = new AtomicBoolean();

    private KvRuntime(TransferEngine engine, PagedKvPool pool, KvConnector connector) {
        this.engine = engine;
        this.pool = pool;
        this.connector = connector;
    }

    /**
     * Starts an engine, allocates a pool for the model's KV geometry (at least one request of the
     * model's whole context) and creates the connector.
     */
    public static KvRuntime start(EngineConfig engineConfig, KvConnectorConfig kvConfig, ServingModel model) {
        LlamaConfig c = model.config();
        KvLayout layout = kvConfig.layout(c.nLayers(), c.nKvHeads(), c.headSize());
        int needed = layout.blocksFor(c.seqLen());
        if (layout.numBlocks() < needed) {
            LOG.warn("a KV pool of {} MiB holds {} positions, less than the model's context of {}: using {} blocks ({} MiB)",
                    kvConfig.poolBytes() >> 20, layout.tokenCapacity(), c.seqLen(), needed,
                    layout.withNumBlocks(needed).totalBytes() >> 20);
            layout = layout.withNumBlocks(needed);
        }
        TransferEngine engine = TransferEngine.create(engineConfig);
        PagedKvPool pool = null;
        try {
            pool = PagedKvPool.allocate(engine, layout);
            KvConnector connector = KvConnector.create(pool, kvConfig, model.manager());
            return new KvRuntime(engine, pool, connector);
        } catch (RuntimeException e) {
            if (pool != null) {
                pool.close();
            }
            engine.close();
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
        o.addProperty("free_blocks", pool.allocator().freeBlocks());
        o.addProperty("used_blocks", pool.allocator().usedBlocks());
        return o;
    }

    /** Closes the connector, the pool and the engine. Idempotent. */
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
        engine.close();
    }
}
