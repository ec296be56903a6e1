package io.mooncake4j.internal.auth;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.PeerAuthenticator;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The mutual challenge-response every connection runs first when a secret is set: each side sends a
 * fresh random nonce and proves, with an HMAC-SHA256 keyed by the secret over both nonces, the
 * purpose and the client's segment name, that it holds the secret. The server proves itself before
 * the client does, and the client checks that proof before it sends its own, so neither a client
 * nor a server without the secret learns anything past the nonces.
 *
 * <pre>
 * client -> server  HELLO     "MC4JAUTH" u8 version u8 purpose  client_nonce[32] u16be name_len name
 * server -> client  CHALLENGE "MC4JAUTH" u8 version server_nonce[32] server_proof[32]
 * client -> server  PROOF     client_proof[32]
 * server -> client  VERDICT   u8 (0 accepted, 1 refused; then the server closes)
 *
 * proof = HMAC-SHA256(secret, label || purpose || client_nonce || server_nonce || u16be name_len || name)
 * label = "mc4j-auth-v1 server\0" or "mc4j-auth-v1 client\0"
 * </pre>
 *
 * <p>A recorded exchange is worthless: the other side's nonce is new on every connection, so an old
 * proof never matches. Proofs are compared in constant time ({@link MessageDigest#isEqual}).
 */
public final class ChallengeResponse implements PeerAuthenticator {
    static final byte[] MAGIC = "MC4JAUTH".getBytes(StandardCharsets.US_ASCII);
    static final int VERSION = 1;
    static final int NONCE_BYTES = 32;
    static final int PROOF_BYTES = 32;
    static final int MAX_NAME_BYTES = 1024;
    static final int HELLO_FIXED_BYTES = MAGIC.length + 2 + NONCE_BYTES + 2;
    static final int CHALLENGE_BYTES = MAGIC.length + 1 + NONCE_BYTES + PROOF_BYTES;
    static final byte ACCEPTED = 0;
    static final byte REFUSED = 1;
    private static final byte[] SERVER_LABEL = "mc4j-auth-v1 server\0".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] CLIENT_LABEL = "mc4j-auth-v1 client\0".getBytes(StandardCharsets.US_ASCII);
    private static final String NO_SECRET_HINT =
            "; check that both engines set the same MC_AUTH_TOKEN (or MC_AUTH_TOKEN_FILE), see docs/security.md";

    private final SecretKeySpec key;
    private final Supplier<String> localName;
    private final SecureRandom random = new SecureRandom();

    /**
     * @param secret the shared secret
     * @param localName this engine's segment name, the identity it proves as a client (read at each
     *     connection, since it is known only once the handshake server runs)
     */
    public ChallengeResponse(AuthSecret secret, Supplier<String> localName) {
        byte[] k = secret.key();
        this.key = new SecretKeySpec(k, "HmacSHA256");
        Arrays.fill(k, (byte) 0);
        this.localName = Objects.requireNonNull(localName, "localName");
    }

    @Override
    public boolean isEnabled() {
        return true;
    }

    @Override
    public void authenticateToServer(Socket socket, Purpose purpose, Duration timeout) {
        String self = localName.get();
        if (self == null) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT,
                    "this engine has no segment name yet (it is starting): it cannot authenticate");
        }
        byte[] name = self.getBytes(StandardCharsets.UTF_8);
        if (name.length == 0 || name.length > MAX_NAME_BYTES) {
            throw new MooncakeException(ErrorCode.INVALID_ARGUMENT,
                    "segment name of " + name.length + " bytes cannot be proved: 1 to " + MAX_NAME_BYTES + " allowed");
        }
        String peer = String.valueOf(socket.getRemoteSocketAddress());
        try (Exchange x = new Exchange(socket, timeout)) {
            byte[] clientNonce = nonce();
            x.write(ByteBuffer.allocate(HELLO_FIXED_BYTES + name.length)
                    .put(MAGIC).put((byte) VERSION).put((byte) purpose.ordinal()).put(clientNonce)
                    .putShort((short) name.length).put(name).array());
            ByteBuffer challenge = ByteBuffer.wrap(x.read(CHALLENGE_BYTES));
            byte[] magic = new byte[MAGIC.length];
            challenge.get(magic);
            int version = challenge.get() & 0xff;
            if (!Arrays.equals(magic, MAGIC) || version != VERSION) {
                throw refused("the peer at " + peer + " did not answer the authentication exchange (version "
                        + VERSION + "); is it a Mooncake4j engine with the same version and a secret set?");
            }
            byte[] serverNonce = new byte[NONCE_BYTES];
            challenge.get(serverNonce);
            byte[] serverProof = new byte[PROOF_BYTES];
            challenge.get(serverProof);
            if (!MessageDigest.isEqual(serverProof, proof(SERVER_LABEL, purpose, clientNonce, serverNonce, name))) {
                throw refused("the peer at " + peer + " did not prove that it holds the secret" + NO_SECRET_HINT);
            }
            x.write(proof(CLIENT_LABEL, purpose, clientNonce, serverNonce, name));
            if (x.read(1)[0] != ACCEPTED) {
                throw refused("the peer at " + peer + " refused our proof" + NO_SECRET_HINT);
            }
        } catch (EOFException | SocketException e) {
            // a server without a secret takes our hello for a frame too large and drops (or resets) us
            throw refused("the peer at " + peer + " closed the connection during authentication (" + e.getMessage()
                    + "): it has no secret set, or refused us" + NO_SECRET_HINT);
        } catch (IOException e) {
            throw ioFailed(peer, timeout, e);
        }
    }

    @Override
    public String authenticateClient(Socket socket, Purpose purpose, Duration timeout) {
        String peer = String.valueOf(socket.getRemoteSocketAddress());
        try (Exchange x = new Exchange(socket, timeout)) {
            // the magic alone first, so a plain Mooncake frame (shorter than a hello) is refused at once
            if (!Arrays.equals(x.read(MAGIC.length), MAGIC)) {
                throw refused("the client at " + peer + " did not start with the authentication exchange: a peer"
                        + " without the secret (MC_AUTH_TOKEN), such as plain Mooncake");
            }
            ByteBuffer hello = ByteBuffer.wrap(x.read(HELLO_FIXED_BYTES - MAGIC.length));
            int version = hello.get() & 0xff;
            int purposeByte = hello.get() & 0xff;
            if (version != VERSION || purposeByte != purpose.ordinal()) {
                throw refused("the client at " + peer + " sent authentication version " + version + " for purpose "
                        + purposeByte + ", expected version " + VERSION + " for " + purpose);
            }
            byte[] clientNonce = new byte[NONCE_BYTES];
            hello.get(clientNonce);
            int nameLength = hello.getShort() & 0xffff;
            if (nameLength == 0 || nameLength > MAX_NAME_BYTES) {
                throw refused("the client at " + peer + " announced a name of " + nameLength + " bytes");
            }
            byte[] name = x.read(nameLength);
            String claimed = utf8(name, peer);
            byte[] serverNonce = nonce();
            x.write(ByteBuffer.allocate(CHALLENGE_BYTES)
                    .put(MAGIC).put((byte) VERSION).put(serverNonce)
                    .put(proof(SERVER_LABEL, purpose, clientNonce, serverNonce, name)).array());
            byte[] clientProof = x.read(PROOF_BYTES);
            if (!MessageDigest.isEqual(clientProof, proof(CLIENT_LABEL, purpose, clientNonce, serverNonce, name))) {
                x.write(new byte[] {REFUSED});
                throw refused("the client at " + peer + " claiming to be " + claimed
                        + " did not prove that it holds the secret");
            }
            x.write(new byte[] {ACCEPTED});
            return claimed;
        } catch (EOFException e) {
            throw refused("the client at " + peer + " closed the connection during authentication");
        } catch (IOException e) {
            throw ioFailed(peer, timeout, e);
        }
    }

    private byte[] nonce() {
        byte[] n = new byte[NONCE_BYTES];
        random.nextBytes(n);
        return n;
    }

    private byte[] proof(byte[] label, Purpose purpose, byte[] clientNonce, byte[] serverNonce, byte[] name) {
        Mac mac;
        try {
            mac = Mac.getInstance("HmacSHA256");
            mac.init(key);
        } catch (GeneralSecurityException e) {
            // every Java platform must provide HmacSHA256
            throw new IllegalStateException("HmacSHA256 is unavailable in this JVM", e);
        }
        mac.update(label);
        mac.update((byte) purpose.ordinal());
        mac.update(clientNonce);
        mac.update(serverNonce);
        mac.update((byte) (name.length >>> 8));
        mac.update((byte) name.length);
        mac.update(name);
        return mac.doFinal();
    }

    private static String utf8(byte[] name, String peer) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(name))
                    .toString();
        } catch (CharacterCodingException e) {
            throw refused("the client at " + peer + " sent a name that is not UTF-8");
        }
    }

    private static MooncakeException refused(String why) {
        return new MooncakeException(ErrorCode.AUTHENTICATION, why);
    }

    private static MooncakeException ioFailed(String peer, Duration timeout, IOException e) {
        if (e instanceof SocketTimeoutException) {
            return new MooncakeException(ErrorCode.IO, "authentication with " + peer + " did not finish within "
                    + timeout.toMillis() + " ms", e);
        }
        return new MooncakeException(ErrorCode.IO, "authentication with " + peer + " failed: " + e, e);
    }

    @Override
    public String toString() {
        return "ChallengeResponse[HMAC-SHA256]";
    }

    /**
     * The socket's streams under one deadline: each read waits at most the time left. The previous
     * {@code SO_TIMEOUT} is restored on close, so the caller's protocol continues as it expects.
     */
    private static final class Exchange implements AutoCloseable {
        private final Socket socket;
        private final InputStream in;
        private final OutputStream out;
        private final int previousTimeout;
        private final long deadline;

        Exchange(Socket socket, Duration timeout) throws IOException {
            this.socket = socket;
            this.previousTimeout = socket.getSoTimeout();
            this.deadline = System.nanoTime() + timeout.toNanos();
            this.in = socket.getInputStream();
            this.out = socket.getOutputStream();
        }

        /** Exactly {@code n} bytes; EOFException when the peer closes first. */
        byte[] read(int n) throws IOException {
            byte[] b = new byte[n];
            int off = 0;
            while (off < n) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new SocketTimeoutException("authentication deadline passed");
                }
                socket.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE,
                        TimeUnit.NANOSECONDS.toMillis(left + 999_999))));
                int r = in.read(b, off, n - off);
                if (r < 0) {
                    throw new EOFException("closed after " + off + " of " + n + " bytes");
                }
                off += r;
            }
            return b;
        }

        /** Writes a message of a few hundred bytes at most, which the socket buffer takes at once. */
        void write(byte[] b) throws IOException {
            out.write(b);
            out.flush();
        }

        @Override
        public void close() throws IOException {
            socket.setSoTimeout(previousTimeout);
        }
    }
}
