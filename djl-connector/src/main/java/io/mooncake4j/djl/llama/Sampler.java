package io.mooncake4j.djl.llama;

import java.util.Arrays;
import java.util.Comparator;

/**
 * Picks the next token from logits exactly as llama2.c's {@code run.c} sampler: argmax when the
 * temperature is 0, else softmax of {@code logits / temperature} and either multinomial sampling
 * or, for {@code 0 < topP < 1}, nucleus (top-p) sampling, with run.c's xorshift random numbers.
 *
 * <p>Not thread-safe: the random state advances with each sample.
 */
public final class Sampler {

    private final int vocabSize;
    private final float temperature;
    private final float topP;
    private long rngState;

    /**
     * Creates a sampler.
     *
     * @param vocabSize the number of logits
     * @param temperature 0 for greedy, else the softmax temperature
     * @param topP the nucleus probability; at or outside {@code (0, 1)} samples from all tokens
     * @param seed the initial xorshift state, as run.c's {@code -s}; 0 becomes 1 (xorshift needs a
     *     nonzero state; run.c would take the time instead)
     */
    public Sampler(int vocabSize, float temperature, float topP, long seed) {
        if (vocabSize <= 0) {
            throw new IllegalArgumentException("vocabSize must be positive, got " + vocabSize);
        }
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException(
                    "temperature must be finite and >= 0, got " + temperature);
        }
        this.vocabSize = vocabSize;
        this.temperature = temperature;
        this.topP = topP;
        this.rngState = seed == 0 ? 1 : seed;
    }

    /**
     * Returns a greedy (argmax) sampler.
     *
     * @param vocabSize the number of logits
     * @return the sampler
     */
    public static Sampler greedy(int vocabSize) {
        return new Sampler(vocabSize, 0f, 0.9f, 1);
    }

    /**
     * Returns the temperature.
     *
     * @return 0 for greedy
     */
    public float temperature() {
        return temperature;
    }

    /**
     * Picks the next token. Does not modify {@code logits}.
     *
     * @param logits the logits, {@code vocabSize} of them
     * @return the token id
     */
    public int sample(float[] logits) {
        if (logits.length != vocabSize) {
            throw new IllegalArgumentException(
                    "expected " + vocabSize + " logits, got " + logits.length);
        }
        if (temperature == 0.0f) {
            return argmax(logits);
        }
        float[] probs = new float[vocabSize];
        for (int i = 0; i < vocabSize; i++) {
            probs[i] = logits[i] / temperature;
        }
        softmax(probs);
        float coin = randomF32();
        if (topP <= 0 || topP >= 1) {
            return sampleMult(probs, coin);
        }
        return sampleTopP(probs, coin);
    }

    /**
     * Returns the index of the first largest value, as run.c's {@code sample_argmax}.
     *
     * @param values the values
     * @return the index
     */
    public static int argmax(float[] values) {
        int best = 0;
        float max = values[0];
        for (int i = 1; i < values.length; i++) {
            if (values[i] > max) {
                best = i;
                max = values[i];
            }
        }
        return best;
    }

    /** run.c's {@code softmax}, in place, with float accumulation. */
    static void softmax(float[] x) {
        float max = x[0];
        for (int i = 1; i < x.length; i++) {
            if (x[i] > max) {
                max = x[i];
            }
        }
        float sum = 0.0f;
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.exp(x[i] - max);
            sum += x[i];
        }
        for (int i = 0; i < x.length; i++) {
            x[i] /= sum;
        }
    }

    private int sampleMult(float[] probs, float coin) {
        float cdf = 0.0f;
        for (int i = 0; i < probs.length; i++) {
            cdf += probs[i];
            if (coin < cdf) {
                return i;
            }
        }
        return probs.length - 1;
    }

    private int sampleTopP(float[] probs, float coin) {
        int n = probs.length;
        // tokens below the cutoff cannot be in the nucleus; run.c drops them before sorting
        float cutoff = (1.0f - topP) / (n - 1);
        Integer[] candidates = new Integer[n];
        int n0 = 0;
        for (int i = 0; i < n; i++) {
            if (probs[i] >= cutoff) {
                candidates[n0++] = i;
            }
        }
        Arrays.sort(candidates, 0, n0, Comparator.comparingDouble(i -> -probs[i]));
        float cumulative = 0.0f;
        int last = n0 - 1;
        for (int i = 0; i < n0; i++) {
            cumulative += probs[candidates[i]];
            if (cumulative > topP) {
                last = i;
                break;
            }
        }
        float r = coin * cumulative;
        float cdf = 0.0f;
        for (int i = 0; i <= last; i++) {
            cdf += probs[candidates[i]];
            if (r < cdf) {
                return candidates[i];
            }
        }
        return candidates[last];
    }

    /** run.c's {@code random_u32}: xorshift64* on the state, upper 32 bits. */
    int randomU32() {
        rngState ^= rngState >>> 12;
        rngState ^= rngState << 25;
        rngState ^= rngState >>> 27;
        return (int) ((rngState * 0x2545F4914F6CDD1DL) >>> 32);
    }

    /** run.c's {@code random_f32}: a float in [0, 1). */
    float randomF32() {
        return (randomU32() >>> 8) / 16777216.0f;
    }
}
