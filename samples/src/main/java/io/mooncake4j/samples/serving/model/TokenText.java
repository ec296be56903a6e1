package io.mooncake4j.samples.serving.model;

import io.mooncake4j.djl.llama.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Turns sampled tokens into text for the API, one token at a time: each token's piece ({@link
 * Tokenizer#decode}, so the space after BOS goes as in run.c), decoded as UTF-8 across token
 * boundaries (a character split over byte tokens comes out whole with its last byte). Unlike run.c's
 * {@code safe_printf}, which drops every lone non-ASCII byte, only control bytes are dropped, so
 * that characters spelled with byte tokens survive. Not thread safe: one per request.
 */
public final class TokenText {
    private final Tokenizer tokenizer;
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPLACE)
            .onUnmappableCharacter(CodingErrorAction.REPLACE);
    private byte[] pending = new byte[0];

    /** A converter for one sequence. */
    public TokenText(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    /** The raw bytes run.c prints for {@code next} after {@code prev} (its {@code safe_printf}). */
    public static byte[] pieceBytes(Tokenizer tokenizer, int prev, int next) {
        return Tokenizer.safePiece(tokenizer.decode(prev, next));
    }

    /** The bytes the API gives for {@code next} after {@code prev}: control bytes dropped, UTF-8 kept. */
    public static byte[] apiBytes(Tokenizer tokenizer, int prev, int next) {
        byte[] piece = tokenizer.decode(prev, next);
        if (piece.length == 1 && (piece[0] & 0xFF) < 0x80) {
            return Tokenizer.safePiece(piece);
        }
        return piece;
    }

    /** The API text of tokens {@code [from, length)} of a sequence (each after its predecessor). */
    public static String text(Tokenizer tokenizer, int[] tokens, int from) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = Math.max(1, from); i < tokens.length; i++) {
            byte[] b = apiBytes(tokenizer, tokens[i - 1], tokens[i]);
            out.write(b, 0, b.length);
        }
        return new String(out.toByteArray(), StandardCharsets.UTF_8);
    }

    /** The text that {@code next} (following {@code prev}) completes; may be empty. */
    public String next(int prev, int next) {
        byte[] piece = apiBytes(tokenizer, prev, next);
        byte[] all = new byte[pending.length + piece.length];
        System.arraycopy(pending, 0, all, 0, pending.length);
        System.arraycopy(piece, 0, all, pending.length, piece.length);
        ByteBuffer in = ByteBuffer.wrap(all);
        CharBuffer out = CharBuffer.allocate(all.length + 1);
        decoder.reset();
        CoderResult r = decoder.decode(in, out, false);
        if (r.isError()) {
            // REPLACE never reports errors; keep the compiler and readers honest
            try {
                r.throwException();
            } catch (CharacterCodingException e) {
                throw new IllegalStateException(e);
            }
        }
        pending = new byte[in.remaining()];
        in.get(pending);
        out.flip();
        return out.toString();
    }

    /** Whatever an incomplete trailing character left, as replacement characters. */
    public String flush() {
        if (pending.length == 0) {
            return "";
        }
        String s = new String(pending, StandardCharsets.UTF_8);
        pending = new byte[0];
        return s;
    }
}
