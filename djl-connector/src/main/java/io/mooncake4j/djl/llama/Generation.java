package io.mooncake4j.djl.llama;

import java.util.Arrays;

/**
 * The state or outcome of a generation.
 *
 * @param tokens the sequence: the prompt's tokens (from BOS) then the sampled ones (without a final
 *     BOS, which stops generation)
 * @param promptLength how many of {@code tokens} are the prompt's
 * @param positions how many positions the model has run, i.e. whose keys and values the cache
 *     holds; while not {@code finished}, {@code tokens.length - 1}, the last token being pending
 * @param finished whether generation is over: {@code steps} positions were run or BOS was sampled
 * @param prefillNanos the time of the prefill forward
 * @param decodeSteps the number of single-token forwards
 * @param decodeNanos the time of the decode loop
 */
public record Generation(
        int[] tokens,
        int promptLength,
        int positions,
        boolean finished,
        long prefillNanos,
        int decodeSteps,
        long decodeNanos) {

    /**
     * Returns the tokens after the prompt.
     *
     * @return the sampled tokens
     */
    public int[] generated() {
        return Arrays.copyOfRange(tokens, Math.min(promptLength, tokens.length), tokens.length);
    }

    /**
     * Returns the decode speed: single-token forwards (with sampling and printing) per second.
     *
     * @return tokens per second, or 0 when there was no decode step
     */
    public double decodeTokensPerSecond() {
        return decodeNanos == 0 ? 0 : decodeSteps * 1e9 / decodeNanos;
    }
}
