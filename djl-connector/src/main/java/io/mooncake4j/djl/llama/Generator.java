package io.mooncake4j.djl.llama;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.Objects;

/**
 * Text generation with llama2.c {@code run.c}'s {@code generate()} semantics, split into a prefill
 * (the prompt in one batched forward) and a decode loop (one token per forward), which may run in
 * different processes given a {@link KvCache} holding the prompt's keys and values.
 *
 * <p>{@code steps} counts positions, the prompt's included; generation stops early when BOS is
 * sampled. Pieces are printed as run.c prints them to stdout (through {@link Tokenizer#safePrint}),
 * the whole generation ending with a newline.
 */
public final class Generator {

    private final LlamaModel model;
    private final Tokenizer tokenizer;

    /**
     * Creates a generator.
     *
     * @param model the model
     * @param tokenizer a tokenizer with the model's vocabulary size
     */
    public Generator(LlamaModel model, Tokenizer tokenizer) {
        this.model = Objects.requireNonNull(model, "model");
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
        if (tokenizer.vocabSize() != model.config().vocabSize()) {
            throw new IllegalArgumentException(
                    "tokenizer vocab size "
                            + tokenizer.vocabSize()
                            + " differs from the model's "
                            + model.config().vocabSize());
        }
    }

    /**
     * Returns the step count run.c's {@code main} uses: {@code seqLen} for 0, negative or more than
     * {@code seqLen}, else {@code steps}.
     *
     * @param steps the requested number of positions
     * @return the effective number of positions
     */
    public int effectiveSteps(int steps) {
        int seqLen = model.config().seqLen();
        return steps <= 0 || steps > seqLen ? seqLen : steps;
    }

    /**
     * Generates from a prompt as {@code run.c} does, in a cache of its own.
     *
     * @param prompt the prompt; {@code null} or empty for none (BOS only)
     * @param steps positions to run, the prompt's included (see {@link #effectiveSteps})
     * @param sampler the sampler
     * @param out where to print, or {@code null}
     * @return the generation
     */
    public Generation generate(String prompt, int steps, Sampler sampler, PrintStream out) {
        try (ContiguousKvCache cache = model.newCache(effectiveSteps(steps))) {
            return generate(prompt, steps, sampler, cache, out);
        }
    }

    /**
     * Generates from a prompt as {@code run.c} does: prefill, decode, then a newline.
     *
     * @param prompt the prompt; {@code null} or empty for none (BOS only)
     * @param steps positions to run, the prompt's included (see {@link #effectiveSteps})
     * @param sampler the sampler
     * @param cache an empty cache with capacity for the effective steps
     * @param out where to print, or {@code null}
     * @return the generation
     */
    public Generation generate(
            String prompt, int steps, Sampler sampler, KvCache cache, PrintStream out) {
        int[] promptTokens = tokenizer.encode(prompt == null ? "" : prompt, true, false);
        Generation prefilled = prefill(promptTokens, steps, sampler, cache, out);
        Generation done = decode(prefilled, steps, sampler, cache, out);
        if (out != null) {
            out.print('\n');
            out.flush();
        }
        return done;
    }

    /**
     * Runs the prompt (at most {@code steps} of its tokens) in one forward at positions from 0,
     * prints the prompt's pieces after the first token, and, when the whole prompt fits in {@code
     * steps}, samples and prints the first new token.
     *
     * @param promptTokens the prompt's tokens, normally from {@code tokenizer.encode(text, true,
     *     false)}
     * @param steps positions to run, the prompt's included (see {@link #effectiveSteps})
     * @param sampler the sampler
     * @param cache an empty cache with capacity for the prompt
     * @param out where to print, or {@code null}
     * @return the state to continue from with {@link #decode}
     */
    public Generation prefill(
            int[] promptTokens, int steps, Sampler sampler, KvCache cache, PrintStream out) {
        Objects.requireNonNull(sampler, "sampler");
        if (promptTokens.length < 1) {
            throw new IllegalArgumentException("expected at least 1 prompt token");
        }
        int total = effectiveSteps(steps);
        int p = promptTokens.length;
        int n = Math.min(p, total);
        long start = System.nanoTime();
        float[] logits = model.forwardLogits(Arrays.copyOf(promptTokens, n), 0, cache);
        long prefillNanos = System.nanoTime() - start;
        for (int i = 0; i < n && i < p - 1; i++) {
            int next = promptTokens[i + 1];
            if (next == Tokenizer.BOS) {
                return new Generation(
                        Arrays.copyOf(promptTokens, i + 1), p, n, true, prefillNanos, 0, 0);
            }
            print(promptTokens[i], next, out);
        }
        if (n < p) {
            return new Generation(
                    Arrays.copyOf(promptTokens, n + 1), p, n, true, prefillNanos, 0, 0);
        }
        int next = sampler.sample(logits);
        if (next == Tokenizer.BOS) {
            return new Generation(promptTokens.clone(), p, n, true, prefillNanos, 0, 0);
        }
        print(promptTokens[p - 1], next, out);
        int[] tokens = Arrays.copyOf(promptTokens, p + 1);
        tokens[p] = next;
        return new Generation(tokens, p, n, n >= total, prefillNanos, 0, 0);
    }

    /**
     * Continues a generation one token per forward until {@code steps} positions have run or BOS is
     * sampled, printing each new piece. The cache must hold positions {@code [0,
     * state.positions())}, and the state's last token must be pending (not yet run).
     *
     * @param state the state from {@link #prefill} or an earlier {@code decode} (possibly in
     *     another process)
     * @param steps positions to run in all, the prompt's included (see {@link #effectiveSteps})
     * @param sampler the sampler
     * @param cache the cache
     * @param out where to print, or {@code null}
     * @return the finished generation
     */
    public Generation decode(
            Generation state, int steps, Sampler sampler, KvCache cache, PrintStream out) {
        Objects.requireNonNull(sampler, "sampler");
        if (state.finished()) {
            return state;
        }
        int[] tokens = state.tokens();
        if (state.positions() != tokens.length - 1) {
            throw new IllegalArgumentException(
                    "an unfinished state must have one pending token: "
                            + state.positions()
                            + " positions run, "
                            + tokens.length
                            + " tokens");
        }
        int total = effectiveSteps(steps);
        if (cache.capacity() < total) {
            throw new IllegalArgumentException(
                    "cache capacity " + cache.capacity() + " is less than the " + total + " steps");
        }
        int[] seq = Arrays.copyOf(tokens, Math.max(tokens.length, total + 1));
        int len = tokens.length;
        int pos = state.positions();
        int token = tokens[len - 1];
        long start = System.nanoTime();
        while (pos < total) {
            float[] logits = model.step(token, pos, cache);
            pos++;
            int next = sampler.sample(logits);
            if (next == Tokenizer.BOS) {
                break;
            }
            print(token, next, out);
            seq[len++] = next;
            token = next;
        }
        long decodeNanos = System.nanoTime() - start;
        return new Generation(
                Arrays.copyOf(seq, len),
                state.promptLength(),
                pos,
                true,
                state.prefillNanos(),
                state.decodeSteps() + pos - state.positions(),
                state.decodeNanos() + decodeNanos);
    }

    private void print(int prev, int next, PrintStream out) {
        if (out != null) {
            Tokenizer.safePrint(tokenizer.decode(prev, next), out);
        }
    }
}
