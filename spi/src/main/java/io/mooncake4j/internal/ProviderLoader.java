package io.mooncake4j.internal;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds service providers through the SPI's own classloader and the thread context classloader (DJL
 * Serving loads plugin jars into the latter), one instance per class, ordered by class name.
 */
public final class ProviderLoader {
    private static final Logger LOG = LoggerFactory.getLogger(ProviderLoader.class);

    private ProviderLoader() {}

    /** Every provider of {@code type} visible from either classloader; broken ones are logged and skipped. */
    public static <T> List<T> load(Class<T> type) {
        Map<String, T> byClass = new LinkedHashMap<>();
        List<ClassLoader> loaders = new ArrayList<>();
        loaders.add(type.getClassLoader());
        ClassLoader context = Thread.currentThread().getContextClassLoader();
        if (context != null && context != type.getClassLoader()) {
            loaders.add(context);
        }
        for (ClassLoader cl : loaders) {
            Iterator<T> it = ServiceLoader.load(type, cl).iterator();
            while (true) {
                try {
                    if (!it.hasNext()) {
                        break;
                    }
                    T provider = it.next();
                    byClass.putIfAbsent(provider.getClass().getName(), provider);
                } catch (ServiceConfigurationError e) {
                    LOG.warn("skipping a {} that failed to load: {}", type.getSimpleName(), e.toString());
                }
            }
        }
        List<T> result = new ArrayList<>(byClass.values());
        result.sort((a, b) -> a.getClass().getName().compareTo(b.getClass().getName()));
        return result;
    }
}
