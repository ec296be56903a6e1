package io.mooncake4j.samples.serving;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.djl.serving.KvRuntime;
import io.mooncake4j.samples.cli.CommandFailure;
import io.mooncake4j.samples.cli.EngineOptions;
import io.mooncake4j.samples.cli.Main;
import io.mooncake4j.samples.serving.model.ModelSpec;
import io.mooncake4j.samples.serving.model.ServingModel;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * What {@code prefill} and {@code decode} share: load the model, start the engine, the paged KV
 * pool and the connector, serve, print {@code READY <role> <url> ...}, and on stop close everything
 * in reverse order.
 */
abstract class WorkerCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin ModelOptions modelOptions = new ModelOptions();

    @Mixin EngineOptions engineOptions = new EngineOptions();

    @Mixin WorkerOptions workerOptions = new WorkerOptions();

    @Mixin ServerOptions serverOptions = new ServerOptions();

    /** "prefill" or "decode". */
    abstract String role();

    /** The default HTTP port. */
    abstract int defaultPort();

    /** Starts the role's HTTP service; returns it and its URL. */
    abstract Service serve(ServingModel model, KvRuntime kv, String host, int port, int threads) throws IOException;

    /** A started HTTP service. */
    record Service(String url, AutoCloseable closer) {}

    @Override
    public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter out = spec.commandLine().getOut();
        ModelSpec modelSpec = modelOptions.resolve();
        EngineConfig engineConfig = engineOptions.config();
        ServingModel.configureDjl(workerOptions.torchThreads);
        if (modelSpec.isRandom()) {
            err.println(role() + ": using a " + modelSpec.describe());
            err.flush();
        }
        ServingModel model;
        try {
            model = ServingModel.load(modelSpec);
        } catch (IOException e) {
            throw new CommandFailure("cannot load the model: " + e.getMessage(), e);
        }
        KvRuntime kv = null;
        Service service = null;
        try {
            kv = KvRuntime.start(engineConfig, workerOptions.kvConfig(), model.config(), model.manager());
            service = serve(model, kv, serverOptions.host, serverOptions.port(defaultPort()), serverOptions.httpThreads);
        } catch (RuntimeException | IOException e) {
            if (kv != null) {
                kv.close();
            }
            model.close();
            if (e instanceof IOException) {
                throw new CommandFailure(role() + ": cannot listen on " + serverOptions.host + ":"
                        + serverOptions.port(defaultPort()) + ": " + e.getMessage(), e);
            }
            throw e;
        }
        err.println(role() + " worker: " + model.describe());
        err.println(role() + " worker: KV pool " + kv.pool().layout() + " registered in segment "
                + kv.engine().localSegmentName() + " (" + kv.engine().protocol() + ")");
        err.flush();
        out.println(ChildJvm.READY + role() + " " + service.url() + " segment=" + kv.engine().localSegmentName()
                + " protocol=" + kv.engine().protocol() + " model=" + model.name());
        out.flush();
        KvRuntime kvFinal = kv;
        Service serviceFinal = service;
        serverOptions.serveUntilStopped(err, () -> {
            try {
                serviceFinal.closer().close();
            } catch (Exception e) {
                err.println(role() + ": closing the HTTP server failed: " + e);
            }
            kvFinal.close();
            model.close();
        });
        return Main.OK;
    }
}
