package io.mooncake4j.metadata.etcd;

import static org.junit.jupiter.api.Assertions.fail;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.kv.GetResponse;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.HttpURLConnection;
import java.net.ServerSocket;
import java.net.URI;
import java.time.Duration;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A real etcd ({@code /usr/bin/etcd}, Debian's {@code etcd-server}) on loopback for the store's
 * tests: free ports, a temporary data directory, stopped and deleted afterwards. Registered on a
 * static field it serves the whole class (and is started again before a test if one stopped it);
 * on an instance field, each test gets a fresh one. Without etcd the tests are skipped, except under
 * CI ({@code CI=true}), where they fail and say how to install it.
 */
final class EtcdServer implements BeforeAllCallback, AfterAllCallback, BeforeEachCallback, AfterEachCallback {
    private static final Duration START_BOUND = Duration.ofSeconds(60);

    private Path dir;
    private int clientPort;
    private int peerPort;
    private Process process;
    private Client client;
    private boolean perClass;

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        perClass = true;
        create();
    }

    @Override
    public void beforeEach(ExtensionContext context) throws Exception {
        if (!perClass) {
            create();
        } else if (!running()) {
            start();
        }
    }

    @Override
    public void afterEach(ExtensionContext context) {
        if (!perClass) {
            destroy();
        }
    }

    @Override
    public void afterAll(ExtensionContext context) {
        destroy();
    }

    private void create() throws Exception {
        Path binary = binary();
        if (binary == null) {
            String why = "etcd is not installed (no /usr/bin/etcd and none on PATH): run scripts/install-deps.sh,"
                    + " which installs Debian's etcd-server";
            if ("true".equalsIgnoreCase(System.getenv("CI"))) {
                fail(why);
            }
            Assumptions.abort(why);
        }
        dir = Files.createTempDirectory("mc4j-etcd");
        clientPort = freePort();
        peerPort = freePort();
        start();
    }

    /** {@code etcd://127.0.0.1:<port>}. */
    String uri() {
        return "etcd://127.0.0.1:" + clientPort;
    }

    URI endpoint() {
        return URI.create("http://127.0.0.1:" + clientPort);
    }

    boolean running() {
        return process != null && process.isAlive();
    }

    /** Starts etcd on the same ports and data directory, and waits until it is healthy. */
    void start() throws IOException, InterruptedException {
        Path data = dir.resolve("data");
        String peer = "http://127.0.0.1:" + peerPort;
        String clientUrl = endpoint().toString();
        ProcessBuilder pb = new ProcessBuilder(List.of(binary().toString(),
                "--name", "mc4j", "--data-dir", data.toString(),
                "--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "mc4j=" + peer, "--logger", "zap", "--log-level", "error"));
        pb.redirectErrorStream(true);
        pb.redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("etcd.log").toFile()));
        process = pb.start();
        long deadline = System.nanoTime() + START_BOUND.toNanos();
        while (!healthy()) {
            if (!process.isAlive() || System.nanoTime() > deadline) {
                String log = Files.readString(dir.resolve("etcd.log"));
                process.destroyForcibly();
                fail("etcd did not become healthy on " + clientUrl + " within " + START_BOUND + "; its log:\n"
                        + log.substring(Math.max(0, log.length() - 4000)));
            }
            Thread.sleep(50);
        }
    }

    /** Stops etcd (SIGTERM, then SIGKILL) and waits for it to exit. */
    void stop() throws InterruptedException {
        if (process != null) {
            process.destroy();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    /** Deletes etcd's data (while stopped): it comes back empty, as after losing its disk. */
    void wipe() throws IOException {
        deleteTree(dir.resolve("data"));
    }

    /** The value of {@code key}, or null; read with a client of the test's own. */
    String get(String key) throws Exception {
        GetResponse r = client().getKVClient().get(ByteSequence.from(key, StandardCharsets.UTF_8))
                .get(10, TimeUnit.SECONDS);
        return r.getKvs().isEmpty() ? null : r.getKvs().get(0).getValue().toString(StandardCharsets.UTF_8);
    }

    /** {@link #get} for conditions polled in lambdas. */
    String getUnchecked(String key) {
        try {
            return get(key);
        } catch (Exception e) {
            throw new IllegalStateException("reading " + key + " from the test's etcd failed", e);
        }
    }

    /** Puts {@code key} without a lease, as Mooncake's own etcd plugin does. */
    void put(String key, String value) throws Exception {
        client().getKVClient().put(ByteSequence.from(key, StandardCharsets.UTF_8),
                ByteSequence.from(value, StandardCharsets.UTF_8)).get(10, TimeUnit.SECONDS);
    }

    private synchronized Client client() {
        if (client == null) {
            client = Client.builder().endpoints(endpoint()).build();
        }
        return client;
    }

    private void destroy() {
        if (client != null) {
            client.close();
            client = null;
        }
        if (process != null) {
            process.destroyForcibly();
            try {
                process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            process = null;
        }
        if (dir != null) {
            try {
                deleteTree(dir);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            dir = null;
        }
    }

    private boolean healthy() {
        try {
            HttpURLConnection c = (HttpURLConnection) URI.create(endpoint() + "/health").toURL().openConnection();
            c.setConnectTimeout(500);
            c.setReadTimeout(2000);
            try (InputStream in = c.getInputStream()) {
                return new String(in.readAllBytes(), StandardCharsets.UTF_8).contains("\"health\":\"true\"");
            } finally {
                c.disconnect();
            }
        } catch (IOException e) {
            return false;
        }
    }

    private static Path binary() {
        Path debian = Paths.get("/usr/bin/etcd");
        if (Files.isExecutable(debian)) {
            return debian;
        }
        String path = System.getenv("PATH");
        for (String d : path == null ? new String[0] : path.split(":")) {
            Path p = Paths.get(d, "etcd");
            if (!d.isEmpty() && Files.isExecutable(p)) {
                return p;
            }
        }
        return null;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
