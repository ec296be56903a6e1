package io.mooncake4j.djl.connector;

import ai.djl.ndarray.NDManager;
import com.google.gson.JsonParser;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.KvTestSupport;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.time.Duration;
import java.util.Map;

/**
 * A decode worker in its own JVM, for tests that kill it: {@code <layout json> <request id>
 * <tokens>}. Prints its destination parameters as one JSON line on stdout, then waits to be killed.
 */
public final class DecodeWorkerProcess {
    private DecodeWorkerProcess() {}

    public static void main(String[] args) throws Exception {
        KvLayout layout = KvLayout.fromJson(JsonParser.parseString(args[0]).getAsJsonObject());
        String rid = args[1];
        int tokens = Integer.parseInt(args[2]);
        NDManager manager = KvTestSupport.newManager();
        TransferEngine engine = KvTestSupport.engine("tcp", Duration.ofSeconds(30));
        PagedKvPool pool = PagedKvPool.allocate(engine, layout);
        KvConnector connector = KvConnector.create(pool, KvConnectorConfig.builder().environment(Map.of()).build(), manager);
        DecodeRequest d = connector.expect(rid, tokens, tokens, new int[0]);
        System.out.println(d.params().toJsonString());
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
