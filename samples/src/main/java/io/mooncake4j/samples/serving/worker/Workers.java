package io.mooncake4j.samples.serving.worker;

import com.google.common.net.HostAndPort;
import com.sun.net.httpserver.HttpServer;
import io.mooncake4j.djl.KvException;
import io.mooncake4j.djl.llama.LlamaConfig;
import io.mooncake4j.samples.serving.http.Http.HttpError;
import java.net.InetAddress;
import java.net.UnknownHostException;

/** What the prefill and decode workers and the router share. */
public final class Workers {
    private Workers() {}

    /** The URL clients use: the bound host, or this host's address when bound to every interface. */
    public static String url(String host, HttpServer server) {
        String h = host;
        if (h == null || h.isEmpty() || h.equals("0.0.0.0") || h.equals("::") || h.equals("[::]")) {
            try {
                h = InetAddress.getLocalHost().getHostAddress();
            } catch (UnknownHostException e) {
                h = "127.0.0.1";
            }
        }
        if (h.startsWith("[") && h.endsWith("]")) {
            h = h.substring(1, h.length() - 1);
        }
        return "http://" + HostAndPort.fromParts(h, server.getAddress().getPort());
    }

    /** Refuses token ids outside the vocabulary, an empty prompt or one longer than the context. */
    static void checkTokens(int[] tokens, LlamaConfig c) {
        if (tokens.length == 0) {
            throw HttpError.badRequest("the prompt has no tokens");
        }
        if (tokens.length > c.seqLen()) {
            throw HttpError.badRequest("the prompt has " + tokens.length + " tokens, more than the model's context of "
                    + c.seqLen());
        }
        for (int t : tokens) {
            if (t < 0 || t >= c.vocabSize()) {
                throw HttpError.badRequest("token id " + t + " is outside the vocabulary [0, " + c.vocabSize() + ")");
            }
        }
    }

    /** The HTTP status of a connector failure. */
    static HttpError httpError(KvException e) {
        switch (e.error()) {
            case INVALID_PARAMS:
            case LAYOUT_MISMATCH:
            case UNSUPPORTED_DTYPE:
                return new HttpError(400, "invalid_request_error", e.getMessage(), e);
            case POOL_EXHAUSTED:
            case CLOSED:
                return new HttpError(503, "server_overloaded", e.getMessage(), e);
            case TIMEOUT:
            case EXPIRED:
                return new HttpError(504, "timeout", e.getMessage(), e);
            default:
                return new HttpError(502, "kv_transfer_error", e.getMessage(), e);
        }
    }
}
