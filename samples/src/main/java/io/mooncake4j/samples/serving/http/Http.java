package io.mooncake4j.samples.serving.http;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.http.HttpClient;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The small HTTP toolkit of the serving app, on the JDK's {@code com.sun.net.httpserver} and {@code
 * java.net.http}: JSON bodies, OpenAI-style errors, and servers with a bounded thread pool.
 */
public final class Http {
    private static final Logger LOG = LoggerFactory.getLogger(Http.class);
    /** The largest request body accepted. */
    static final int MAX_BODY = 64 << 20;

    private Http() {}

    /** An error that becomes an HTTP status and an OpenAI-style error body. */
    public static final class HttpError extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final int status;
        private final String type;

        /** An error with a status, an OpenAI error type and a message for the client. */
        public HttpError(int status, String type, String message) {
            this(status, type, message, null);
        }

        /** The same with a cause. */
        public HttpError(int status, String type, String message, Throwable cause) {
            super(message, cause);
            this.status = status;
            this.type = type;
        }

        /** The HTTP status. */
        public int status() {
            return status;
        }

        /** The OpenAI error type ({@code invalid_request_error}, {@code server_error}, ...). */
        public String type() {
            return type;
        }

        /** 400, invalid_request_error. */
        public static HttpError badRequest(String message) {
            return new HttpError(400, "invalid_request_error", message);
        }
    }

    private static final String NODELAY = "sun.net.httpserver.nodelay";

    /** A handler that may throw; errors become JSON error responses. */
    @FunctionalInterface
    public interface Handler {
        /** Handles one exchange. */
        void handle(HttpExchange exchange) throws Exception;
    }

    /**
     * Starts a server on {@code host:port} (port 0: any free port) whose handlers run on up to
     * {@code threads} threads.
     */
    public static HttpServer start(String host, int port, int threads, String name) throws IOException {
        // Streamed tokens are small writes: without TCP_NODELAY, Nagle's algorithm and the client's
        // delayed ACK hold the first token back by tens of milliseconds. The JDK's server reads
        // this property once, when its first server starts.
        if (System.getProperty(NODELAY) == null) {
            System.setProperty(NODELAY, "true");
        }
        HttpServer server = HttpServer.create(new InetSocketAddress(host, port), 256);
        AtomicInteger n = new AtomicInteger();
        ThreadPoolExecutor pool = new ThreadPoolExecutor(threads, threads, 30, TimeUnit.SECONDS,
                new LinkedBlockingQueue<>(), r -> {
                    Thread t = new Thread(r, name + "-http-" + n.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                });
        pool.allowCoreThreadTimeOut(true);
        server.setExecutor(pool);
        server.start();
        return server;
    }

    /** Stops a server started by {@link #start} and its threads. */
    public static void stop(HttpServer server) {
        if (server == null) {
            return;
        }
        server.stop(0);
        if (server.getExecutor() instanceof ExecutorService es) {
            es.shutdownNow();
        }
    }

    /** Wraps a handler: method check, and errors turned into JSON responses. */
    public static HttpHandler route(String method, Handler h) {
        return exchange -> {
            // not try-with-resources: its catch blocks would run after the exchange was closed
            try {
                if (method != null && !method.equalsIgnoreCase(exchange.getRequestMethod())) {
                    exchange.getResponseHeaders().set("Allow", method);
                    sendError(exchange, new HttpError(405, "invalid_request_error",
                            exchange.getRequestMethod() + " is not allowed on " + exchange.getRequestURI().getPath()
                                    + ": use " + method));
                    return;
                }
                h.handle(exchange);
            } catch (HttpError e) {
                sendError(exchange, e);
            } catch (IOException e) {
                // the client went away; nothing to answer
                LOG.debug("{} {}: {}", exchange.getRequestMethod(), exchange.getRequestURI(), e.toString());
            } catch (Exception e) {
                LOG.warn("{} {} failed", exchange.getRequestMethod(), exchange.getRequestURI(), e);
                sendError(exchange, new HttpError(500, "server_error", e.toString(), e));
            } finally {
                exchange.close();
            }
        };
    }

    /** Reads the request body as a JSON object; 400 when it is not one. */
    public static JsonObject readJson(HttpExchange exchange) throws IOException {
        String text = readBody(exchange);
        try {
            JsonElement e = JsonParser.parseString(text);
            if (!e.isJsonObject()) {
                throw HttpError.badRequest("the request body must be a JSON object");
            }
            return e.getAsJsonObject();
        } catch (JsonParseException e) {
            throw HttpError.badRequest("the request body is not valid JSON: " + e.getMessage());
        }
    }

    /** Reads the request body as UTF-8 text. */
    public static String readBody(HttpExchange exchange) throws IOException {
        try (InputStream in = exchange.getRequestBody()) {
            byte[] b = in.readNBytes(MAX_BODY + 1);
            if (b.length > MAX_BODY) {
                throw new HttpError(413, "invalid_request_error", "the request body exceeds " + MAX_BODY + " bytes");
            }
            return new String(b, StandardCharsets.UTF_8);
        }
    }

    /** Sends a JSON body with a status. */
    public static void sendJson(HttpExchange exchange, int status, JsonElement body) throws IOException {
        send(exchange, status, "application/json", body.toString().getBytes(StandardCharsets.UTF_8));
    }

    /** Sends a body with a status and content type. */
    public static void send(HttpExchange exchange, int status, String contentType, byte[] body) throws IOException {
        exchange.getResponseHeaders().set("Content-Type", contentType);
        exchange.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        if (body.length > 0) {
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        }
    }

    /** Sends an OpenAI-style error, unless the response has already begun. */
    public static void sendError(HttpExchange exchange, HttpError e) {
        try {
            if (exchange.getResponseCode() != -1) {
                return; // headers already sent (a stream that failed midway)
            }
            sendJson(exchange, e.status(), errorBody(e.status(), e.type(), e.getMessage()));
        } catch (IOException | RuntimeException ignored) {
            // the client went away
        }
    }

    /** {@code {"error": {"message", "type", "code"}}}, as OpenAI answers errors. */
    public static JsonObject errorBody(int status, String type, String message) {
        JsonObject err = new JsonObject();
        err.addProperty("message", message == null ? "error" : message);
        err.addProperty("type", type);
        err.addProperty("code", status);
        JsonObject o = new JsonObject();
        o.add("error", err);
        return o;
    }

    /** An HTTP/1.1 client (the JDK server does not speak h2c). */
    public static HttpClient newClient(Duration connectTimeout) {
        return HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(connectTimeout)
                .followRedirects(HttpClient.Redirect.NEVER)
                .build();
    }

    /** The message of an error body {@code {"error": {"message": ...}}}, or the text itself. */
    public static String errorMessage(String body) {
        try {
            JsonElement e = JsonParser.parseString(body);
            if (e.isJsonObject() && e.getAsJsonObject().has("error")) {
                JsonElement err = e.getAsJsonObject().get("error");
                if (err.isJsonObject() && err.getAsJsonObject().has("message")) {
                    return err.getAsJsonObject().get("message").getAsString();
                }
                return err.toString();
            }
        } catch (RuntimeException ignored) {
            // not JSON
        }
        return body.length() > 500 ? body.substring(0, 500) + "..." : body;
    }
}
