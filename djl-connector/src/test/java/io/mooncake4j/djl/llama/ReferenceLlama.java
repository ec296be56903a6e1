package io.mooncake4j.djl.llama;

/**
 * A direct Java port of llama2.c {@code run.c}'s {@code forward()} on float arrays, one token at a
 * time, as an independent reference for {@link LlamaModel} on random configurations.
 */
final class ReferenceLlama {

    private final LlamaConfig c;
    private final float[] emb;
    private final float[][] rmsAtt;
    private final float[][] wq;
    private final float[][] wk;
    private final float[][] wv;
    private final float[][] wo;
    private final float[][] rmsFfn;
    private final float[][] w1;
    private final float[][] w2;
    private final float[][] w3;
    private final float[] rmsFinal;
    private final float[] cls;
    private final float[][] keyCache;
    private final float[][] valueCache;

    ReferenceLlama(LlamaWeights w) {
        c = w.config();
        int layers = c.nLayers();
        emb = w.tokenEmbedding().toFloatArray();
        rmsAtt = new float[layers][];
        wq = new float[layers][];
        wk = new float[layers][];
        wv = new float[layers][];
        wo = new float[layers][];
        rmsFfn = new float[layers][];
        w1 = new float[layers][];
        w2 = new float[layers][];
        w3 = new float[layers][];
        for (int l = 0; l < layers; l++) {
            LlamaWeights.Layer layer = w.layer(l);
            rmsAtt[l] = layer.rmsAtt().toFloatArray();
            wq[l] = layer.wq().toFloatArray();
            wk[l] = layer.wk().toFloatArray();
            wv[l] = layer.wv().toFloatArray();
            wo[l] = layer.wo().toFloatArray();
            rmsFfn[l] = layer.rmsFfn().toFloatArray();
            w1[l] = layer.w1().toFloatArray();
            w2[l] = layer.w2().toFloatArray();
            w3[l] = layer.w3().toFloatArray();
        }
        rmsFinal = w.rmsFinal().toFloatArray();
        cls = w.classifier().toFloatArray();
        keyCache = new float[layers][c.seqLen() * c.kvDim()];
        valueCache = new float[layers][c.seqLen() * c.kvDim()];
    }

    float[] forward(int token, int pos) {
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hs = c.headSize();
        int kvMul = c.kvMul();
        float[] x = new float[dim];
        System.arraycopy(emb, token * dim, x, 0, dim);
        float[] xb = new float[dim];
        float[] q = new float[dim];
        float[] k = new float[kvDim];
        float[] v = new float[kvDim];
        float[] hb = new float[c.hiddenDim()];
        float[] hb2 = new float[c.hiddenDim()];
        float[] att = new float[pos + 1];
        for (int l = 0; l < c.nLayers(); l++) {
            rmsnorm(xb, x, rmsAtt[l]);
            matmul(q, xb, wq[l], dim, dim);
            matmul(k, xb, wk[l], dim, kvDim);
            matmul(v, xb, wv[l], dim, kvDim);
            for (int i = 0; i < dim; i += 2) {
                int headDim = i % hs;
                float freq = 1.0f / (float) Math.pow(10000.0f, headDim / (float) hs);
                float val = pos * freq;
                float fcr = (float) Math.cos(val);
                float fci = (float) Math.sin(val);
                int rotn = i < kvDim ? 2 : 1;
                for (int r = 0; r < rotn; r++) {
                    float[] vec = r == 0 ? q : k;
                    float v0 = vec[i];
                    float v1 = vec[i + 1];
                    vec[i] = v0 * fcr - v1 * fci;
                    vec[i + 1] = v0 * fci + v1 * fcr;
                }
            }
            System.arraycopy(k, 0, keyCache[l], pos * kvDim, kvDim);
            System.arraycopy(v, 0, valueCache[l], pos * kvDim, kvDim);
            for (int h = 0; h < c.nHeads(); h++) {
                int kvOff = (h / kvMul) * hs;
                for (int t = 0; t <= pos; t++) {
                    float score = 0f;
                    for (int i = 0; i < hs; i++) {
                        score += q[h * hs + i] * keyCache[l][t * kvDim + kvOff + i];
                    }
                    att[t] = score / (float) Math.sqrt(hs);
                }
                Sampler.softmax(att);
                for (int i = 0; i < hs; i++) {
                    float sum = 0f;
                    for (int t = 0; t <= pos; t++) {
                        sum += att[t] * valueCache[l][t * kvDim + kvOff + i];
                    }
                    xb[h * hs + i] = sum;
                }
            }
            float[] xb2 = new float[dim];
            matmul(xb2, xb, wo[l], dim, dim);
            for (int i = 0; i < dim; i++) {
                x[i] += xb2[i];
            }
            rmsnorm(xb, x, rmsFfn[l]);
            matmul(hb, xb, w1[l], dim, c.hiddenDim());
            matmul(hb2, xb, w3[l], dim, c.hiddenDim());
            for (int i = 0; i < hb.length; i++) {
                float val = hb[i];
                val *= (float) (1.0 / (1.0 + Math.exp(-val)));
                hb[i] = val * hb2[i];
            }
            matmul(xb2, hb, w2[l], c.hiddenDim(), dim);
            for (int i = 0; i < dim; i++) {
                x[i] += xb2[i];
            }
        }
        rmsnorm(x, x, rmsFinal);
        float[] logits = new float[c.vocabSize()];
        matmul(logits, x, cls, dim, c.vocabSize());
        return logits;
    }

    private static void rmsnorm(float[] o, float[] x, float[] weight) {
        float ss = 0f;
        for (float f : x) {
            ss += f * f;
        }
        ss /= x.length;
        ss += 1e-5f;
        ss = 1.0f / (float) Math.sqrt(ss);
        for (int j = 0; j < x.length; j++) {
            o[j] = weight[j] * (ss * x[j]);
        }
    }

    /** W (d,n) @ x (n,) -> xout (d,). */
    private static void matmul(float[] xout, float[] x, float[] w, int n, int d) {
        for (int i = 0; i < d; i++) {
            float val = 0f;
            for (int j = 0; j < n; j++) {
                val += w[i * n + j] * x[j];
            }
            xout[i] = val;
        }
    }
}
