package io.mooncake4j.samples.serving.worker;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.mooncake4j.samples.serving.http.Http.HttpError;

/** JSON helpers of the workers' internal protocol. */
final class Json {
    private Json() {}

    static JsonArray array(int[] values) {
        JsonArray a = new JsonArray(values.length);
        for (int v : values) {
            a.add(v);
        }
        return a;
    }

    static int[] ints(JsonObject o, String field) {
        JsonElement e = o.get(field);
        if (e == null || !e.isJsonArray()) {
            throw HttpError.badRequest(field + " must be an array of integers");
        }
        JsonArray a = e.getAsJsonArray();
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = a.get(i).getAsInt();
        }
        return r;
    }

    static String string(JsonObject o, String field) {
        JsonElement e = o.get(field);
        if (e == null || e.isJsonNull()) {
            throw HttpError.badRequest(field + " is missing");
        }
        return e.getAsString();
    }

    static double millis(long nanos) {
        return Math.round(nanos / 1e3) / 1e3;
    }
}
