package io.mooncake4j.djl.llama;

import ai.djl.ndarray.NDArray;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/** Writes weights as llama2.c checkpoints (legacy layout or version 1), for round-trip tests. */
final class Checkpoints {

    private Checkpoints() {}

    static void writeLegacy(LlamaWeights w, Path file) throws IOException {
        LlamaConfig c = w.config();
        ByteBuffer header = ByteBuffer.allocate(28).order(ByteOrder.LITTLE_ENDIAN);
        header.putInt(c.dim()).putInt(c.hiddenDim()).putInt(c.nLayers()).putInt(c.nHeads());
        header.putInt(c.nKvHeads());
        header.putInt(c.sharedClassifier() ? c.vocabSize() : -c.vocabSize());
        header.putInt(c.seqLen());
        List<NDArray> tensors = new ArrayList<>();
        tensors.add(w.tokenEmbedding());
        addLayers(tensors, w, LlamaWeights.Layer::rmsAtt);
        addLayers(tensors, w, LlamaWeights.Layer::wq);
        addLayers(tensors, w, LlamaWeights.Layer::wk);
        addLayers(tensors, w, LlamaWeights.Layer::wv);
        addLayers(tensors, w, LlamaWeights.Layer::wo);
        addLayers(tensors, w, LlamaWeights.Layer::rmsFfn);
        addLayers(tensors, w, LlamaWeights.Layer::w1);
        addLayers(tensors, w, LlamaWeights.Layer::w2);
        addLayers(tensors, w, LlamaWeights.Layer::w3);
        tensors.add(w.rmsFinal());
        // freq_cis_real and freq_cis_imag, which readers skip: filled with NaN to prove it
        int ropeFloats = 2 * c.seqLen() * (c.headSize() / 2);
        write(file, header, tensors, ropeFloats, c.sharedClassifier() ? null : w.classifier());
    }

    static void writeVersion1(LlamaWeights w, Path file) throws IOException {
        LlamaConfig c = w.config();
        ByteBuffer header = ByteBuffer.allocate(256).order(ByteOrder.LITTLE_ENDIAN);
        header.putInt(LlamaWeights.MAGIC).putInt(1);
        header.putInt(c.dim()).putInt(c.hiddenDim()).putInt(c.nLayers()).putInt(c.nHeads());
        header.putInt(c.nKvHeads()).putInt(c.vocabSize()).putInt(c.seqLen());
        header.put((byte) (c.sharedClassifier() ? 1 : 0));
        header.position(256);
        List<NDArray> tensors = new ArrayList<>();
        addLayers(tensors, w, LlamaWeights.Layer::rmsAtt);
        addLayers(tensors, w, LlamaWeights.Layer::rmsFfn);
        tensors.add(w.rmsFinal());
        tensors.add(w.tokenEmbedding());
        addLayers(tensors, w, LlamaWeights.Layer::wq);
        addLayers(tensors, w, LlamaWeights.Layer::wk);
        addLayers(tensors, w, LlamaWeights.Layer::wv);
        addLayers(tensors, w, LlamaWeights.Layer::wo);
        addLayers(tensors, w, LlamaWeights.Layer::w1);
        addLayers(tensors, w, LlamaWeights.Layer::w2);
        addLayers(tensors, w, LlamaWeights.Layer::w3);
        write(file, header, tensors, 0, c.sharedClassifier() ? null : w.classifier());
    }

    private static void addLayers(
            List<NDArray> out, LlamaWeights w, Function<LlamaWeights.Layer, NDArray> part) {
        for (int l = 0; l < w.config().nLayers(); l++) {
            out.add(part.apply(w.layer(l)));
        }
    }

    private static void write(
            Path file, ByteBuffer header, List<NDArray> tensors, int nanFloats, NDArray cls)
            throws IOException {
        try (FileChannel ch =
                FileChannel.open(
                        file,
                        StandardOpenOption.CREATE,
                        StandardOpenOption.TRUNCATE_EXISTING,
                        StandardOpenOption.WRITE)) {
            header.flip();
            writeFully(ch, header);
            for (NDArray t : tensors) {
                writeFloats(ch, t.toFloatArray());
            }
            float[] nan = new float[nanFloats];
            Arrays.fill(nan, Float.NaN);
            writeFloats(ch, nan);
            if (cls != null) {
                writeFloats(ch, cls.toFloatArray());
            }
        }
    }

    private static void writeFloats(FileChannel ch, float[] values) throws IOException {
        ByteBuffer buf =
                ByteBuffer.allocate(values.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        buf.asFloatBuffer().put(values);
        writeFully(ch, buf);
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }
}
