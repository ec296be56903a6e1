package io.mooncake4j.internal.auth;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Arrays;
import java.util.Optional;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The shared secret, from {@code MC_AUTH_TOKEN} or the file named by {@code MC_AUTH_TOKEN_FILE}
 * (its content, surrounding whitespace and the final newline removed). Never printed.
 */
public final class AuthSecret {
    /** Fewest bytes accepted: the exchange resists guessing only as well as the secret does. */
    public static final int MIN_BYTES = 16;

    private static final Logger LOG = LoggerFactory.getLogger(AuthSecret.class);
    private static final String HOW = "; generate one with `openssl rand -hex 32`";

    private final byte[] key;

    private AuthSecret(byte[] key) {
        if (key.length < MIN_BYTES) {
            throw new MooncakeException(
                    ErrorCode.CONFIGURATION,
                    "the authentication secret is " + key.length + " bytes, fewer than the "
                            + MIN_BYTES + " required" + HOW);
        }
        this.key = key;
    }

    /** A secret from its text (tests, embedding). */
    public static AuthSecret of(String secret) {
        return new AuthSecret(secret.strip().getBytes(StandardCharsets.UTF_8));
    }

    /**
     * The secret {@code config} names, or empty when neither key is set.
     *
     * @throws MooncakeException {@code CONFIGURATION} when both keys are set, the file cannot be
     *     read, or the secret is empty or shorter than {@link #MIN_BYTES}
     */
    public static Optional<AuthSecret> load(EngineConfig config) {
        String token = config.get(EngineConfig.AUTH_TOKEN);
        String file = config.get(EngineConfig.AUTH_TOKEN_FILE);
        if (token != null && file != null) {
            throw new MooncakeException(
                    ErrorCode.CONFIGURATION,
                    "both " + EngineConfig.AUTH_TOKEN + " (" + config.sourceOf(EngineConfig.AUTH_TOKEN) + ") and "
                            + EngineConfig.AUTH_TOKEN_FILE + " (" + config.sourceOf(EngineConfig.AUTH_TOKEN_FILE)
                            + ") are set: set only one");
        }
        if (token != null) {
            return Optional.of(of(token));
        }
        return file == null ? Optional.empty() : Optional.of(fromFile(file));
    }

    private static AuthSecret fromFile(String name) {
        Path path;
        try {
            path = Path.of(name);
        } catch (InvalidPathException e) {
            throw new MooncakeException(
                    ErrorCode.CONFIGURATION, EngineConfig.AUTH_TOKEN_FILE + "='" + name + "' is not a valid path", e);
        }
        byte[] raw;
        try {
            raw = Files.readAllBytes(path);
        } catch (IOException e) {
            throw new MooncakeException(
                    ErrorCode.CONFIGURATION,
                    "cannot read the secret file " + EngineConfig.AUTH_TOKEN_FILE + "='" + name + "': " + e
                            + "; check that it exists and that this user may read it",
                    e);
        }
        String text = new String(raw, StandardCharsets.UTF_8).strip();
        Arrays.fill(raw, (byte) 0);
        if (text.isEmpty()) {
            throw new MooncakeException(
                    ErrorCode.CONFIGURATION, "the secret file " + EngineConfig.AUTH_TOKEN_FILE + "='" + name + "' is empty" + HOW);
        }
        warnIfWorldReadable(path);
        return of(text);
    }

    private static void warnIfWorldReadable(Path path) {
        Set<PosixFilePermission> perms;
        try {
            perms = Files.getPosixFilePermissions(path);
        } catch (UnsupportedOperationException | IOException e) {
            return; // not a POSIX file system: nothing to check
        }
        if (perms.contains(PosixFilePermission.OTHERS_READ)) {
            LOG.warn("the secret file {} ({}) is readable by every user of this host: anyone of them can join"
                    + " the cluster; run chmod 600 on it", path, EngineConfig.AUTH_TOKEN_FILE);
        }
    }

    /** The HMAC key: the secret's UTF-8 bytes (a copy). */
    byte[] key() {
        return key.clone();
    }

    @Override
    public String toString() {
        return "AuthSecret[" + key.length + " bytes]";
    }
}
