package io.mooncake4j.gpu.cuda;

import ai.djl.ndarray.types.DataType;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.djl.connector.DecodeRequest;
import io.mooncake4j.djl.connector.KvConnector;
import io.mooncake4j.djl.connector.KvConnectorConfig;
import io.mooncake4j.djl.connector.KvTransferParams;
import io.mooncake4j.djl.kv.KvLayout;
import io.mooncake4j.djl.kv.PagedKvPool;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;

/**
 * The decode worker of {@link GpuKvConnectorTwoProcessTest} in its own JVM, its KV pool on {@code
 * cuda:0}. Reads commands on stdin, one a line, and answers on stdout:
 *
 * <ul>
 *   <li>{@code expect <request> <tokens> <seed>}: reserves blocks, prints {@code PARAMS <json>}
 *       (the destination for a push), waits for the KV cache, checks it holds the pattern of
 *       {@code seed} and prints {@code OK <request>} or {@code FAIL <request> <why>};
 *   <li>{@code fetch <seed> <json>}: fetches (pulls) the prefill result the parameters describe,
 *       checks it and answers likewise.
 * </ul>
 *
 * Argument: {@code 1} (CUDA IPC on, the default) or {@code 0} (off: GPU-aware TCP). Ends when stdin closes.
 */
public final class GpuKvDecodeProcess {
    static final KvLayout LAYOUT = new KvLayout(8, 8, 128, 16, 64, DataType.FLOAT16);
    static final Duration WAIT = Duration.ofSeconds(60);

    private GpuKvDecodeProcess() {}

    public static void main(String[] args) throws Exception {
        try (TransferEngine engine = GpuEngines.createNetworked(!"0".equals(args.length > 0 ? args[0] : "1"));
                PagedKvPool pool = PagedKvPool.allocate(engine, LAYOUT, MemoryLocation.cuda(0));
                KvConnector decode = KvConnector.create(pool,
                        KvConnectorConfig.builder().environment(Map.of()).waitTimeout(WAIT).build(),
                        ArraylessManager.create())) {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                String[] w = line.split(" ", 3);
                if (w[0].equals("expect")) {
                    int tokens = Integer.parseInt(w[2].split(" ")[0]);
                    int seed = Integer.parseInt(w[2].split(" ")[1]);
                    try (DecodeRequest d = decode.expect(w[1], tokens, tokens, new int[0])) {
                        answer("PARAMS " + d.params().toJsonString());
                        answer(outcome(d, pool, seed));
                    }
                } else {
                    KvTransferParams source = KvTransferParams.parse(w[2]);
                    try (DecodeRequest d = decode.fetch(source, source.numTokens(), new int[0])) {
                        answer(outcome(d, pool, Integer.parseInt(w[1])));
                    }
                }
            }
        }
    }

    private static String outcome(DecodeRequest d, PagedKvPool pool, int seed) {
        try {
            d.await(WAIT);
        } catch (RuntimeException e) {
            return "FAIL " + d.requestId() + " " + e.getMessage().replace('\n', ' ');
        }
        String diff = KvBlockPattern.check(pool, d.blocks(), LAYOUT.blocksFor(d.numTokens()), seed);
        return diff == null ? "OK " + d.requestId() : "FAIL " + d.requestId() + " " + diff;
    }

    private static void answer(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
