package io.mooncake4j.samples.serving.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.mooncake4j.djl.llama.Tokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenTextTest {
    @TempDir Path dir;

    private Tokenizer bytes() throws IOException {
        Path f = dir.resolve("bytes.tok");
        Files.write(f, ServingModel.byteTokenizer());
        return Tokenizer.load(f, ServingModel.BYTE_VOCAB);
    }

    @Test
    void shouldEncodeAnyTextOneTokenPerByteWithTheByteTokenizer() throws IOException {
        Tokenizer t = bytes();
        int[] ids = t.encode("hé", true, false);
        // BOS, the dummy-prefix space, 'h', then the two bytes of 'é'
        assertEquals(5, ids.length);
        assertEquals(Tokenizer.BOS, ids[0]);
        assertEquals(' ' + 3, ids[1]);
        assertEquals('h' + 3, ids[2]);
        assertEquals(0xC3 + 3, ids[3]);
        assertEquals(0xA9 + 3, ids[4]);
        assertEquals(ServingModel.BYTE_VOCAB, ServingModel.tokenizerVocab(dir.resolve("bytes.tok")));
    }

    @Test
    void shouldJoinACharacterSplitOverByteTokens() throws IOException {
        Tokenizer t = bytes();
        int[] ids = t.encode("aé€b", true, false);
        TokenText text = new TokenText(t);
        StringBuilder sb = new StringBuilder();
        int partial = 0;
        for (int i = 1; i < ids.length; i++) {
            String s = text.next(ids[i - 1], ids[i]);
            if (s.isEmpty()) {
                partial++;
            }
            sb.append(s);
        }
        sb.append(text.flush());
        // run.c drops the space that follows BOS
        assertEquals("aé€b", sb.toString());
        assertEquals(4, partial, "the space after BOS and the first bytes of é and € give no text");
        assertEquals("aé€b", TokenText.text(t, ids, 1));
    }

    @Test
    void shouldSkipUnprintableBytesAsRunCDoes() throws IOException {
        Tokenizer t = bytes();
        assertEquals(0, TokenText.pieceBytes(t, 'a' + 3, 0x07 + 3).length);
        assertEquals(0, TokenText.apiBytes(t, 'a' + 3, 0x07 + 3).length);
        // run.c drops a lone non-ASCII byte; the API keeps it to assemble UTF-8
        assertEquals(0, TokenText.pieceBytes(t, 'a' + 3, 0xC3 + 3).length);
        assertEquals(1, TokenText.apiBytes(t, 'a' + 3, 0xC3 + 3).length);
        assertEquals("\n", new String(TokenText.pieceBytes(t, 'a' + 3, '\n' + 3), StandardCharsets.UTF_8));
    }
}
