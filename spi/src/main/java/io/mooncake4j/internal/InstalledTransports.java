package io.mooncake4j.internal;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryRegion;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.RegionRegistration;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.spi.TransportProvider;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The transports of one engine: the primary one (index 0, whose protocol the local descriptor
 * publishes) and the others installed to reach peers that publish their protocols. Routes by
 * protocol, registers regions on all of them transactionally, and closes them.
 */
public final class InstalledTransports implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(InstalledTransports.class);

    private final Transport[] transports;
    private final String[] protocols;

    private InstalledTransports(Transport[] transports) {
        this.transports = transports;
        this.protocols = new String[transports.length];
        for (int i = 0; i < transports.length; i++) {
            protocols[i] = transports[i].protocol();
        }
    }

    /**
     * Creates a transport from each provider (the primary first) with its own context; when one fails,
     * closes those already created and rethrows.
     */
    public static InstalledTransports create(
            List<TransportProvider> providers, Function<String, TransportContext> contexts) {
        List<Transport> created = new ArrayList<>(providers.size());
        try {
            for (TransportProvider p : providers) {
                Transport t = p.create(contexts.apply(p.protocol()));
                created.add(t);
                if (!t.protocol().equalsIgnoreCase(p.protocol())) {
                    throw new MooncakeException(
                            ErrorCode.TRANSPORT_UNAVAILABLE,
                            p + " created a transport for protocol '" + t.protocol() + "': fix the plugin");
                }
            }
        } catch (RuntimeException | Error e) {
            for (int i = created.size() - 1; i >= 0; i--) {
                closeQuietly(created.get(i));
            }
            throw e;
        }
        return new InstalledTransports(created.toArray(new Transport[0]));
    }

    /** A set of already created transports, the primary first (none: for tests of the registry alone). */
    public static InstalledTransports of(Transport... transports) {
        return new InstalledTransports(transports.clone());
    }

    /** The primary transport. */
    public Transport primary() {
        return transports[0];
    }

    /** The transport of index {@code i} (0 is the primary). */
    public Transport get(int i) {
        return transports[i];
    }

    /** The index of the transport installed for {@code protocol} (any case), or -1. Allocates nothing. */
    public int indexOf(String protocol) {
        for (int i = 0; i < protocols.length; i++) {
            if (protocols[i].equalsIgnoreCase(protocol)) {
                return i;
            }
        }
        return -1;
    }

    /** The installed protocols, primary first. */
    public List<String> protocols() {
        return List.of(protocols);
    }

    /** Lets every transport add its segment-wide fields to the local descriptor. */
    public void describe(JsonObject descriptor) {
        for (Transport t : transports) {
            t.describe(descriptor);
        }
    }

    /**
     * Registers {@code region} on every transport, in order. When one refuses (throws), unregisters it
     * from those that accepted it, in reverse order, and rethrows: nothing stays registered.
     */
    public RegisteredRegion register(MemoryRegion region) {
        RegionRegistration[] regs = new RegionRegistration[transports.length];
        JsonObject fields = new JsonObject();
        int accepted = -1;
        try {
            for (int i = 0; i < transports.length; i++) {
                RegionRegistration r = transports[i].registerRegion(region);
                if (r == null) {
                    throw new MooncakeException(
                            ErrorCode.REGISTRATION,
                            "transport '" + protocols[i] + "' returned no registration for " + region
                                    + ": fix the plugin (return RegionRegistration.NONE)");
                }
                regs[i] = r;
                accepted = i;
                for (Map.Entry<String, JsonElement> f : r.descriptorFields().entrySet()) {
                    fields.add(f.getKey(), f.getValue());
                }
            }
        } catch (RuntimeException | Error e) {
            unregister(region, regs, accepted);
            throw e;
        }
        return new RegisteredRegion(region, regs, fields);
    }

    /** Unregisters a registered region from every transport, in reverse order; never throws. */
    public void unregister(RegisteredRegion r) {
        unregister(r.region(), r.registrations(), transports.length - 1);
    }

    private void unregister(MemoryRegion region, RegionRegistration[] regs, int last) {
        for (int i = last; i >= 0; i--) {
            try {
                transports[i].unregisterRegion(region, regs[i]);
            } catch (RuntimeException e) {
                LOG.warn("transport '{}' failed to unregister {}", protocols[i], region, e);
            }
        }
    }

    /** Closes every transport, the extras first. Idempotent as the transports are. */
    @Override
    public void close() {
        for (int i = transports.length - 1; i >= 0; i--) {
            closeQuietly(transports[i]);
        }
    }

    private static void closeQuietly(Transport t) {
        try {
            t.close();
        } catch (RuntimeException e) {
            LOG.warn("closing transport '{}' failed", t.protocol(), e);
        }
    }

    @Override
    public String toString() {
        return Arrays.toString(protocols);
    }
}
