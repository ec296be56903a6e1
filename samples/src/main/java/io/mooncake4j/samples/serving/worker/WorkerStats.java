package io.mooncake4j.samples.serving.worker;

import com.google.gson.JsonObject;
import com.sun.net.httpserver.HttpExchange;
import io.mooncake4j.djl.serving.KvRuntime;
import io.mooncake4j.samples.serving.http.Http;
import io.mooncake4j.samples.serving.model.ServingModel;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/** A worker's request counters and its {@code /health} and {@code /metrics} answers. */
final class WorkerStats {
    final AtomicInteger active = new AtomicInteger();
    final AtomicLong served = new AtomicLong();
    final AtomicLong failed = new AtomicLong();
    private final String role;
    private final ServingModel model;
    private final KvRuntime kv;

    WorkerStats(String role, ServingModel model, KvRuntime kv) {
        this.role = role;
        this.model = model;
        this.kv = kv;
    }

    void health(HttpExchange ex) throws IOException {
        JsonObject o = new JsonObject();
        o.addProperty("status", "ok");
        o.addProperty("role", role);
        o.addProperty("model", model.name());
        o.addProperty("active", active.get());
        o.add("kv", kv.describe());
        Http.sendJson(ex, 200, o);
    }

    void metrics(HttpExchange ex) throws IOException {
        JsonObject o = new JsonObject();
        o.addProperty("role", role);
        o.addProperty("served", served.get());
        o.addProperty("failed", failed.get());
        o.addProperty("active", active.get());
        o.add("kv", kv.connector().metrics().toJson());
        Http.sendJson(ex, 200, o);
    }
}
