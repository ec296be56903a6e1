package io.mooncake4j.djl.llama;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

class TokenizerTest {

    private static Tokenizer tokenizer;
    private static Path tokenizerFile;

    @BeforeAll
    static void load() throws IOException {
        Path dir = ModelFiles.find();
        if (dir != null) {
            tokenizerFile = dir.resolve(ModelFiles.TOKENIZER);
            tokenizer = Tokenizer.load(tokenizerFile, 512);
        }
    }

    private static Tokenizer tok() {
        ModelFiles.require();
        return tokenizer;
    }

    @Test
    void encodesThePromptLikeRunC() {
        assertArrayEquals(
                new int[] {1, 403, 407, 261, 378}, tok().encode("Once upon a time", true, false));
        assertArrayEquals(
                new int[] {403, 407, 261, 378, 2}, tok().encode("Once upon a time", false, true));
    }

    @Test
    void emptyTextHasNoDummyPrefix() {
        assertArrayEquals(new int[] {1}, tok().encode("", true, false));
        assertArrayEquals(new int[] {1, 2}, tok().encode("", true, true));
        assertArrayEquals(new int[0], tok().encode("", false, false));
    }

    @Test
    void unknownCharactersFallBackToByteTokens() {
        // U+65E5 (E6 97 A5) is not in the vocabulary: one token per byte, byte + 3
        int[] tokens = tok().encode("\u65e5", true, false);
        assertArrayEquals(new int[] {1, 410, 0xE6 + 3, 0x97 + 3, 0xA5 + 3}, tokens);
        byte[] decoded = new byte[3];
        for (int i = 0; i < 3; i++) {
            byte[] piece = tok().decode(tokens[i + 1], tokens[i + 2]);
            assertEquals(1, piece.length);
            decoded[i] = piece[0];
        }
        assertEquals("\u65e5", new String(decoded, StandardCharsets.UTF_8));
        assertArrayEquals(new int[] {1, 410, 503}, tok().encode("\u20ac", true, false));
    }

    @Test
    void decodeStripsTheSpaceAfterBosAndMapsByteTokens() {
        assertEquals("Once", text(tok().decode(1, 403)));
        assertEquals(" upon", text(tok().decode(403, 407)));
        assertEquals("\n", text(tok().decode(426, 13)));
        assertEquals("<unk>", text(tok().decode(5, 0)));
        assertArrayEquals(new byte[0], tok().decode(5, 3), "<0x00> prints nothing (a C string)");
    }

    @Test
    void safePrintSkipsUnprintableSingleBytes() {
        assertArrayEquals(new byte[0], Tokenizer.safePiece(new byte[] {7}));
        assertArrayEquals(new byte[0], Tokenizer.safePiece(new byte[] {(byte) 0xE2}));
        assertArrayEquals(new byte[0], Tokenizer.safePiece(new byte[0]));
        assertArrayEquals(new byte[] {'\n'}, Tokenizer.safePiece(new byte[] {'\n'}));
        assertArrayEquals(new byte[] {'\t'}, Tokenizer.safePiece(new byte[] {'\t'}));
        assertArrayEquals(new byte[] {'a'}, Tokenizer.safePiece(new byte[] {'a'}));
        byte[] multi = {(byte) 0xC3, (byte) 0xA9};
        assertArrayEquals(multi, Tokenizer.safePiece(multi));
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        Tokenizer.safePrint(new byte[] {1}, out);
        Tokenizer.safePrint("ab".getBytes(StandardCharsets.US_ASCII), out);
        assertEquals("ab", bytes.toString(StandardCharsets.UTF_8));
    }

    @Test
    void roundTripsEnglishText() {
        String text = "Lily's mom said, \"Let's go to the park.\"\nThe end.";
        int[] tokens = tok().encode(text, true, false);
        StringBuilder sb = new StringBuilder();
        for (int i = 1; i < tokens.length; i++) {
            sb.append(text(tok().decode(tokens[i - 1], tokens[i])));
        }
        assertEquals(text, sb.toString());
        assertTrue(tokens.length < text.length(), Arrays.toString(tokens));
    }

    @Test
    void rejectsAVocabSizeMismatch(@TempDir Path tmp) throws IOException {
        ModelFiles.require();
        IOException tooMany =
                assertThrows(IOException.class, () -> Tokenizer.load(tokenizerFile, 513));
        assertTrue(tooMany.getMessage().contains("vocab size"), tooMany.getMessage());
        IOException tooFew =
                assertThrows(IOException.class, () -> Tokenizer.load(tokenizerFile, 511));
        assertTrue(tooFew.getMessage().contains("more tokens"), tooFew.getMessage());
        Path truncated = tmp.resolve("truncated.bin");
        byte[] all = Files.readAllBytes(tokenizerFile);
        Files.write(truncated, Arrays.copyOf(all, all.length - 2));
        IOException cut = assertThrows(IOException.class, () -> Tokenizer.load(truncated, 512));
        assertTrue(cut.getMessage().contains("ended at token 511"), cut.getMessage());
    }

    private static String text(byte[] piece) {
        return new String(piece, StandardCharsets.UTF_8);
    }
}
