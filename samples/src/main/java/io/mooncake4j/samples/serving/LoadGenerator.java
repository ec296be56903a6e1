package io.mooncake4j.samples.serving;

import com.google.gson.JsonObject;
import io.mooncake4j.samples.serving.http.CompletionClient;
import io.mooncake4j.samples.serving.http.CompletionRequest;
import io.mooncake4j.samples.serving.http.CompletionResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;

/**
 * Sends {@code requests} completions with {@code concurrency} in flight (closed loop: each client
 * thread sends its next request when the previous one ended), prompts taken in turn.
 */
public final class LoadGenerator {
    private final CompletionClient client;
    private final List<String> prompts;
    private final int maxTokens;
    private final float temperature;
    private final boolean stream;
    private final String model;

    /** A generator against {@code url} ({@code http://host:port} of a router or decode worker). */
    public LoadGenerator(String url, List<String> prompts, int maxTokens, float temperature, boolean stream,
            String model, Duration timeout) {
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("no prompts");
        }
        this.client = new CompletionClient(url, timeout);
        this.prompts = List.copyOf(prompts);
        this.maxTokens = maxTokens;
        this.temperature = temperature;
        this.stream = stream;
        this.model = model;
    }

    /**
     * Runs the load.
     *
     * @param onDone called with the number of requests ended so far (progress), from client threads
     */
    public LoadReport run(int requests, int concurrency, IntConsumer onDone) throws InterruptedException {
        List<CompletionResult> results = Collections.synchronizedList(new ArrayList<>());
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        AtomicInteger next = new AtomicInteger();
        AtomicInteger ended = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        long t0 = System.nanoTime();
        for (int c = 0; c < Math.max(1, Math.min(concurrency, requests)); c++) {
            Thread t = new Thread(() -> {
                int i;
                while ((i = next.getAndIncrement()) < requests && !Thread.currentThread().isInterrupted()) {
                    JsonObject body = CompletionRequest.body(model, prompts.get(i % prompts.size()), maxTokens,
                            temperature, stream);
                    try {
                        results.add(stream ? client.stream(body, (text, id) -> { }) : client.complete(body));
                    } catch (RuntimeException e) {
                        errors.add("request " + i + ": " + e.getMessage());
                    }
                    if (onDone != null) {
                        onDone.accept(ended.incrementAndGet());
                    }
                }
            }, "mooncake4j-loadgen-" + c);
            t.setDaemon(true);
            t.start();
            threads.add(t);
        }
        try {
            for (Thread t : threads) {
                t.join();
            }
        } catch (InterruptedException e) {
            threads.forEach(Thread::interrupt);
            throw e;
        }
        return new LoadReport(List.copyOf(results), List.copyOf(errors), System.nanoTime() - t0);
    }
}
