package io.mooncake4j.djl.llama;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;

/**
 * A llama2.c byte-pair tokenizer, with {@code run.c}'s encode, decode and {@code safe_printf}
 * semantics.
 *
 * <p>The file holds an int32 {@code max_token_length}, then for each token a float32 merge score,
 * an int32 length and the piece's raw bytes. Pieces are bytes, not text: {@link #decode} returns
 * bytes, which a UTF-8 character may span across tokens.
 */
public final class Tokenizer {

    /** The beginning-of-sequence token. */
    public static final int BOS = 1;

    /** The end-of-sequence token. */
    public static final int EOS = 2;

    /** Byte {@code b} is token {@code b + BYTE_OFFSET} ({@code <0xXX>}). */
    public static final int BYTE_OFFSET = 3;

    private final byte[][] pieces;
    private final float[] scores;
    private final int maxTokenLength;

    /** Pieces as ISO-8859-1 strings (one char per byte), to ids; the lowest id wins. */
    private final Map<String, Integer> ids;

    private Tokenizer(byte[][] pieces, float[] scores, int maxTokenLength) {
        this.pieces = pieces;
        this.scores = scores;
        this.maxTokenLength = maxTokenLength;
        this.ids = new HashMap<>(pieces.length * 2);
        for (int i = 0; i < pieces.length; i++) {
            ids.putIfAbsent(key(cString(pieces[i])), i);
        }
    }

    /**
     * Reads a llama2.c tokenizer file holding exactly {@code vocabSize} tokens.
     *
     * @param file the tokenizer file, e.g. {@code tokenizer.bin} or {@code tok512.bin}
     * @param vocabSize the model's vocabulary size
     * @return the tokenizer
     * @throws IOException if the file cannot be read, or does not hold {@code vocabSize} tokens
     */
    public static Tokenizer load(Path file, int vocabSize) throws IOException {
        if (vocabSize <= 0) {
            throw new IllegalArgumentException("vocabSize must be positive, got " + vocabSize);
        }
        ByteBuffer buf = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        byte[][] pieces = new byte[vocabSize][];
        float[] scores = new float[vocabSize];
        int maxTokenLength;
        int i = 0;
        try {
            maxTokenLength = buf.getInt();
            for (; i < vocabSize; i++) {
                scores[i] = buf.getFloat();
                int len = buf.getInt();
                if (len < 0 || len > buf.remaining()) {
                    throw new BufferUnderflowException();
                }
                pieces[i] = new byte[len];
                buf.get(pieces[i]);
            }
        } catch (BufferUnderflowException e) {
            throw new IOException(
                    "tokenizer "
                            + file
                            + " ended at token "
                            + i
                            + " but the model's vocab size is "
                            + vocabSize
                            + " (vocab size mismatch or truncated file)");
        }
        if (buf.hasRemaining()) {
            throw new IOException(
                    "tokenizer "
                            + file
                            + " has "
                            + buf.remaining()
                            + " bytes left after "
                            + vocabSize
                            + " tokens: it holds more tokens than the model's vocab size");
        }
        return new Tokenizer(pieces, scores, maxTokenLength);
    }

    /**
     * Returns the number of tokens.
     *
     * @return the vocab size
     */
    public int vocabSize() {
        return pieces.length;
    }

    /**
     * Returns the {@code max_token_length} from the file header.
     *
     * @return the longest piece's length in bytes, as the file states it
     */
    public int maxTokenLength() {
        return maxTokenLength;
    }

    /**
     * Returns a token's piece as stored in the file.
     *
     * @param token the token id
     * @return a copy of its bytes
     */
    public byte[] piece(int token) {
        Objects.checkIndex(token, pieces.length);
        return pieces[token].clone();
    }

    /**
     * Returns a token's merge score.
     *
     * @param token the token id
     * @return its score (higher merges first)
     */
    public float score(int token) {
        Objects.checkIndex(token, scores.length);
        return scores[token];
    }

    /**
     * Encodes text as {@code run.c} does: optional BOS, a dummy-prefix space token when the text is
     * not empty, one token per UTF-8 character (or one byte token, id {@code byte + 3}, per byte of
     * a character not in the vocabulary), then repeated merging of the consecutive pair whose
     * concatenation is the best-scoring token (leftmost on ties), then optional EOS. Like C, it
     * reads the text up to its first NUL character.
     *
     * @param text the text
     * @param bos whether to start with BOS (1)
     * @param eos whether to end with EOS (2)
     * @return the token ids
     */
    public int[] encode(String text, boolean bos, boolean eos) {
        Objects.requireNonNull(text, "text (run.c: cannot encode NULL text)");
        byte[] bytes = cString(text.getBytes(StandardCharsets.UTF_8));
        int[] tokens = new int[bytes.length + 3];
        int n = 0;
        if (bos) {
            tokens[n++] = BOS;
        }
        if (bytes.length > 0) {
            int dummyPrefix = lookup(" ");
            if (dummyPrefix == -1) {
                throw new IllegalStateException(
                        "the vocabulary has no \" \" token for the dummy prefix");
            }
            tokens[n++] = dummyPrefix;
        }
        int start = 0;
        for (int i = 0; i < bytes.length; i++) {
            if ((bytes[i] & 0xC0) != 0x80) {
                start = i;
            }
            int len = i - start + 1;
            boolean continues = i + 1 < bytes.length && (bytes[i + 1] & 0xC0) == 0x80;
            if (continues && len < 4) {
                continue;
            }
            int id = lookup(new String(bytes, start, len, StandardCharsets.ISO_8859_1));
            if (id != -1) {
                tokens[n++] = id;
            } else {
                for (int b = start; b <= i; b++) {
                    tokens[n++] = (bytes[b] & 0xFF) + BYTE_OFFSET;
                }
            }
            start = i + 1;
        }
        n = merge(tokens, n);
        if (eos) {
            tokens[n++] = EOS;
        }
        return Arrays.copyOf(tokens, n);
    }

    private int merge(int[] tokens, int n) {
        while (true) {
            float bestScore = -1e10f;
            int bestId = -1;
            int bestIdx = -1;
            for (int i = 0; i < n - 1; i++) {
                int id = lookup(key(tokens[i]) + key(tokens[i + 1]));
                if (id != -1 && scores[id] > bestScore) {
                    bestScore = scores[id];
                    bestId = id;
                    bestIdx = i;
                }
            }
            if (bestIdx == -1) {
                return n;
            }
            tokens[bestIdx] = bestId;
            System.arraycopy(tokens, bestIdx + 2, tokens, bestIdx + 1, n - bestIdx - 2);
            n--;
        }
    }

    /**
     * Returns the bytes {@code run.c} prints for {@code token} following {@code prevToken}: the
     * piece up to its first NUL, without its leading space right after BOS, and a {@code <0xXX>}
     * piece as the raw byte XX.
     *
     * @param prevToken the previous token
     * @param token the token to decode
     * @return the piece's bytes
     */
    public byte[] decode(int prevToken, int token) {
        Objects.checkIndex(token, pieces.length);
        byte[] piece = cString(pieces[token]);
        int from = prevToken == BOS && piece.length > 0 && piece[0] == ' ' ? 1 : 0;
        int byteValue = parseByteToken(piece, from);
        if (byteValue >= 0) {
            return byteValue == 0 ? new byte[0] : new byte[] {(byte) byteValue};
        }
        return Arrays.copyOfRange(piece, from, piece.length);
    }

    /**
     * Returns what {@code run.c}'s {@code safe_printf} prints for a piece: nothing for an empty
     * piece or a single byte that is neither printable ASCII nor whitespace, else the piece.
     *
     * @param piece a decoded piece
     * @return the bytes to print (possibly empty)
     */
    public static byte[] safePiece(byte[] piece) {
        if (piece.length == 1) {
            int b = piece[0] & 0xFF;
            boolean printable = b >= 0x20 && b <= 0x7E;
            boolean space = b == ' ' || (b >= '\t' && b <= '\r');
            if (!printable && !space) {
                return new byte[0];
            }
        }
        return piece;
    }

    /**
     * Writes a piece to {@code out} as {@code run.c}'s {@code safe_printf} does, and flushes.
     *
     * @param piece a decoded piece
     * @param out the stream
     */
    public static void safePrint(byte[] piece, PrintStream out) {
        byte[] safe = safePiece(piece);
        out.write(safe, 0, safe.length);
        out.flush();
    }

    private int lookup(String key) {
        Integer id = ids.get(key);
        return id == null ? -1 : id;
    }

    private String key(int token) {
        return key(cString(pieces[token]));
    }

    private static String key(byte[] bytes) {
        return new String(bytes, StandardCharsets.ISO_8859_1);
    }

    /** The bytes before the first NUL, as C's string functions see them. */
    private static byte[] cString(byte[] piece) {
        for (int i = 0; i < piece.length; i++) {
            if (piece[i] == 0) {
                return Arrays.copyOf(piece, i);
            }
        }
        return piece;
    }

    /**
     * Parses {@code <0xXX>} at {@code from} like {@code sscanf(piece, "<0x%02hhX>", ...)}: one or
     * two hex digits after {@code <0x} (the closing {@code >} is not checked, as in sscanf).
     *
     * @return the byte value, or -1 when the piece is no byte token
     */
    private static int parseByteToken(byte[] piece, int from) {
        if (piece.length - from < 4
                || piece[from] != '<'
                || piece[from + 1] != '0'
                || piece[from + 2] != 'x') {
            return -1;
        }
        int value = 0;
        int digits = 0;
        for (int i = from + 3; i < piece.length && digits < 2; i++, digits++) {
            int d = Character.digit(piece[i], 16);
            if (d < 0) {
                break;
            }
            value = value * 16 + d;
        }
        return digits == 0 ? -1 : value;
    }
}
