package io.mooncake4j.internal.auth;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AuthSecretTest {
    private static final String TOKEN = "0123456789abcdef0123456789abcdef";

    @TempDir
    Path dir;

    private static EngineConfig env(Map<String, String> env) {
        return EngineConfig.builder().environment(env).build();
    }

    @Test
    void shouldHaveNoSecretWhenNeitherKeyIsSet() {
        assertFalse(AuthSecret.load(env(Map.of())).isPresent());
    }

    @Test
    void shouldReadTheTokenFromTheEnvironmentAndHideItInToString() {
        AuthSecret s = AuthSecret.load(env(Map.of(EngineConfig.AUTH_TOKEN, TOKEN))).orElseThrow();
        assertArrayEquals(TOKEN.getBytes(StandardCharsets.US_ASCII), s.key());
        assertFalse(s.toString().contains(TOKEN));
        EngineConfig explicit = EngineConfig.builder().environment(Map.of()).set(EngineConfig.AUTH_TOKEN, TOKEN).build();
        assertFalse(explicit.toString().contains(TOKEN), explicit.toString());
    }

    @Test
    void shouldReadTheFileWithoutItsNewline() throws IOException {
        Path f = Files.writeString(dir.resolve("token"), TOKEN + "\n");
        AuthSecret s = AuthSecret.load(env(Map.of(EngineConfig.AUTH_TOKEN_FILE, f.toString()))).orElseThrow();
        assertArrayEquals(TOKEN.getBytes(StandardCharsets.US_ASCII), s.key());
    }

    @Test
    void shouldFailWithConfigurationErrorsThatSayWhatToDo() throws IOException {
        MooncakeException both = assertThrows(MooncakeException.class, () -> AuthSecret.load(env(Map.of(
                EngineConfig.AUTH_TOKEN, TOKEN, EngineConfig.AUTH_TOKEN_FILE, "/x"))));
        assertEquals(ErrorCode.CONFIGURATION, both.code());
        assertTrue(both.getMessage().contains("set only one"), both.getMessage());

        MooncakeException missing = assertThrows(MooncakeException.class, () -> AuthSecret.load(env(Map.of(
                EngineConfig.AUTH_TOKEN_FILE, dir.resolve("absent").toString()))));
        assertEquals(ErrorCode.CONFIGURATION, missing.code());
        assertTrue(missing.getMessage().contains("cannot read the secret file"), missing.getMessage());

        Path empty = Files.writeString(dir.resolve("empty"), "\n");
        MooncakeException blank = assertThrows(MooncakeException.class, () -> AuthSecret.load(env(Map.of(
                EngineConfig.AUTH_TOKEN_FILE, empty.toString()))));
        assertTrue(blank.getMessage().contains("is empty"), blank.getMessage());

        MooncakeException shortOne = assertThrows(MooncakeException.class, () -> AuthSecret.load(env(Map.of(
                EngineConfig.AUTH_TOKEN, "hunter2"))));
        assertEquals(ErrorCode.CONFIGURATION, shortOne.code());
        assertTrue(shortOne.getMessage().contains("openssl rand -hex 32"), shortOne.getMessage());
        assertFalse(shortOne.getMessage().contains("hunter2"));
    }
}
