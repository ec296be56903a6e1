package io.mooncake4j.samples.serving;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.samples.serving.model.ModelSpec;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A prefill worker, a decode worker and optionally a router, each in its own JVM on loopback (HTTP
 * and the transfer engine on 127.0.0.1), as {@code demo} and {@code generate --disaggregated} run
 * them. Closing stops all of them.
 */
public final class LocalCluster implements AutoCloseable {
    /** How long a JVM may take to load its model and serve. */
    public static final Duration START_TIMEOUT = Duration.ofSeconds(180);

    private final List<ChildJvm> children;
    private final String prefillUrl;
    private final String decodeUrl;
    private final String routerUrl;

    private LocalCluster(List<ChildJvm> children, String prefillUrl, String decodeUrl, String routerUrl) {
        this.children = children;
        this.prefillUrl = prefillUrl;
        this.decodeUrl = decodeUrl;
        this.routerUrl = routerUrl;
    }

    /**
     * Starts the JVMs: the prefill worker, then the decode worker told its URL ({@code --prefill}),
     * then the router (if asked) in front of them.
     *
     * @param model the model both workers serve
     * @param workerArgs more worker flags (engine, KV pool, threads)
     * @param withRouter whether to start a router
     * @param logDir where each JVM's output goes ({@code prefill.log}, ...)
     * @param echo where to copy the JVMs' output, or null
     */
    public static LocalCluster start(ModelSpec model, List<String> workerArgs, boolean withRouter, Path logDir,
            PrintStream echo) {
        List<ChildJvm> started = new ArrayList<>();
        try {
            List<String> common = new ArrayList<>(model.asArguments());
            common.add("--host=127.0.0.1");
            common.add("--port=0");
            if (System.getenv(EngineConfig.LOCAL_HOSTNAME) == null
                    && System.getProperty(EngineConfig.propertyName(EngineConfig.LOCAL_HOSTNAME)) == null
                    && workerArgs.stream().noneMatch(a -> a.startsWith("--local_server_name"))) {
                common.add("--local_server_name=127.0.0.1");
            }
            common.addAll(workerArgs);
            List<String> pre = new ArrayList<>();
            pre.add("prefill");
            pre.addAll(common);
            List<String> dec = new ArrayList<>();
            dec.add("decode");
            dec.addAll(common);
            ChildJvm prefill = ChildJvm.start("prefill", pre, logDir.resolve("prefill.log"), echo);
            started.add(prefill);
            String prefillUrl = prefill.awaitReady(START_TIMEOUT);
            dec.add("--prefill=" + prefillUrl);
            ChildJvm decode = ChildJvm.start("decode", dec, logDir.resolve("decode.log"), echo);
            started.add(decode);
            String decodeUrl = decode.awaitReady(START_TIMEOUT);
            String routerUrl = null;
            if (withRouter) {
                ChildJvm router = ChildJvm.start("router", List.of("router", "--host=127.0.0.1", "--port=0",
                        "--prefill=" + prefillUrl, "--decode=" + decodeUrl), logDir.resolve("router.log"), echo);
                started.add(router);
                routerUrl = router.awaitReady(START_TIMEOUT);
            }
            return new LocalCluster(started, prefillUrl, decodeUrl, routerUrl);
        } catch (RuntimeException e) {
            ChildJvm.closeAll(started);
            throw e;
        }
    }

    /** The prefill worker's URL. */
    public String prefillUrl() {
        return prefillUrl;
    }

    /** The decode worker's URL. */
    public String decodeUrl() {
        return decodeUrl;
    }

    /** The router's URL, or null without one. */
    public String routerUrl() {
        return routerUrl;
    }

    /** The JVMs, in start order. */
    public List<ChildJvm> children() {
        return List.copyOf(children);
    }

    /** Stops every JVM (in parallel). Idempotent. */
    @Override
    public void close() {
        ChildJvm.closeAll(children);
    }
}
