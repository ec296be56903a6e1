package io.mooncake4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.spi.Transport;
import io.mooncake4j.spi.TransportContext;
import io.mooncake4j.spi.TransportProvider;
import io.mooncake4j.testkit.InMemoryTransportProvider;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TransportSelectorTest {
    /** A fake provider with a fixed protocol, availability and priority. */
    static class Fake extends TransportProvider {
        final String protocol;
        final boolean available;
        final int priority;

        Fake(String protocol, boolean available, int priority) {
            this.protocol = protocol;
            this.available = available;
            this.priority = priority;
        }

        @Override
        public String protocol() {
            return protocol;
        }

        @Override
        public Throwable unavailabilityCause(EngineConfig config) {
            return available ? null : new IllegalStateException("no " + protocol + " device found");
        }

        @Override
        public int priority() {
            return priority;
        }

        @Override
        public Transport create(TransportContext context) {
            throw new UnsupportedOperationException();
        }
    }

    /** Same protocol as Fake, another class name, for tie breaking. */
    static final class ZFake extends Fake {
        ZFake(String protocol, boolean available, int priority) {
            super(protocol, available, priority);
        }
    }

    /** A provider only the services file in a test classloader names. */
    public static final class ContextOnly extends Fake {
        public ContextOnly() {
            super("ctx-only", true, 1);
        }
    }

    private static EngineConfig config(Map<String, String> env) {
        return EngineConfig.builder().environment(env).build();
    }

    private final Fake tcp = new Fake("tcp", true, 5);
    private final Fake efa = new Fake("efa", false, 8);
    private final Fake rdma = new Fake("rdma", true, 7);

    @Test
    void shouldPreferExplicitThenEnvironmentThenSystemProperty() {
        List<TransportProvider> all = List.of(tcp, efa, rdma);
        EngineConfig env = config(Map.of("MOONCAKE_PROTOCOL", "rdma"));
        assertSame(rdma, TransportSelector.select(env, all));
        EngineConfig explicit = EngineConfig.builder().environment(Map.of("MOONCAKE_PROTOCOL", "rdma")).protocol("tcp").build();
        assertSame(tcp, TransportSelector.select(explicit, all));
        System.setProperty("mooncake.protocol", "tcp");
        try {
            assertSame(tcp, TransportSelector.select(config(Map.of()), all));
            assertSame(rdma, TransportSelector.select(env, all), "environment beats system property");
        } finally {
            System.clearProperty("mooncake.protocol");
        }
    }

    @Test
    void shouldPickHighestPriorityAvailableWhenNothingNamed() {
        assertSame(rdma, TransportSelector.select(config(Map.of()), List.of(tcp, efa, rdma)));
    }

    @Test
    void shouldBreakTiesByClassName() {
        Fake a = new Fake("x", true, 5);
        ZFake z = new ZFake("y", true, 5);
        assertSame(a, TransportSelector.select(config(Map.of()), List.of(z, a)));
        assertSame(a, TransportSelector.select(config(Map.of()), List.of(a, z)));
    }

    @Test
    void shouldFailForUnavailableNamedProtocolWithoutFallingBack() {
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> TransportSelector.select(config(Map.of("MOONCAKE_PROTOCOL", "efa")), List.of(tcp, efa, rdma)));
        assertEquals(ErrorCode.TRANSPORT_UNAVAILABLE, e.code());
        assertTrue(e.getMessage().contains("no efa device found"), e.getMessage());
        assertTrue(e.getMessage().contains("tcp (") && e.getMessage().contains("rdma ("), e.getMessage());
        assertTrue(e.getMessage().contains("environment variable MOONCAKE_PROTOCOL"), e.getMessage());
    }

    @Test
    void shouldInstallEveryOtherAvailableAutoSelectableTransportBesideThePrimary() {
        Fake efaUp = new Fake("efa", true, 8);
        List<TransportProvider> all = List.of(tcp, efaUp, rdma, new InMemoryTransportProvider(), efa);
        List<TransportProvider> installed =
                TransportSelector.selectInstalled(config(Map.of("MOONCAKE_PROTOCOL", "tcp")), all);
        assertEquals(List.of(tcp, efaUp, rdma), installed, "primary first, then by protocol; test-only left out");
        assertEquals(List.of(efaUp, rdma), TransportSelector.selectInstalled(config(Map.of()), all).subList(0, 2),
                "the highest priority is the primary");
    }

    @Test
    void shouldInstallExactlyTheNamedTransportsOrNone() {
        List<TransportProvider> all = List.of(tcp, rdma, new InMemoryTransportProvider());
        EngineConfig named = config(Map.of("MOONCAKE_PROTOCOL", "tcp", "MC_INSTALLED_TRANSPORTS", " test-mem , TCP"));
        List<TransportProvider> installed = TransportSelector.selectInstalled(named, all);
        assertEquals(2, installed.size());
        assertSame(tcp, installed.get(0));
        assertEquals("test-mem", installed.get(1).protocol(), "a test-only provider when named");
        EngineConfig none = config(Map.of("MOONCAKE_PROTOCOL", "tcp", "MC_INSTALLED_TRANSPORTS", "none"));
        assertEquals(List.of(tcp), TransportSelector.selectInstalled(none, all));
    }

    @Test
    void shouldFailWhenANamedExtraTransportIsUnknownOrUnavailable() {
        List<TransportProvider> all = List.of(tcp, efa);
        MooncakeException unknown = assertThrows(MooncakeException.class, () -> TransportSelector.selectInstalled(
                config(Map.of("MOONCAKE_PROTOCOL", "tcp", "MC_INSTALLED_TRANSPORTS", "ib")), all));
        assertEquals(ErrorCode.TRANSPORT_UNAVAILABLE, unknown.code());
        assertTrue(unknown.getMessage().contains("'ib'") && unknown.getMessage().contains("unknown")
                && unknown.getMessage().contains("environment variable MC_INSTALLED_TRANSPORTS"), unknown.getMessage());
        MooncakeException down = assertThrows(MooncakeException.class, () -> TransportSelector.selectInstalled(
                config(Map.of("MOONCAKE_PROTOCOL", "tcp", "MC_INSTALLED_TRANSPORTS", "efa")), all));
        assertTrue(down.getMessage().contains("not available here")
                && down.getMessage().contains("no efa device found"), down.getMessage());
        MooncakeException empty = assertThrows(MooncakeException.class, () -> TransportSelector.selectInstalled(
                config(Map.of("MOONCAKE_PROTOCOL", "tcp", "MC_INSTALLED_TRANSPORTS", "tcp,,efa")), all));
        assertEquals(ErrorCode.CONFIGURATION, empty.code());
    }

    @Test
    void shouldFailForUnknownProtocolListingKnownOnes() {
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> TransportSelector.select(EngineConfig.builder().environment(Map.of()).protocol("ib").build(), List.of(tcp, efa)));
        assertTrue(e.getMessage().contains("unknown protocol 'ib'"), e.getMessage());
        assertTrue(e.getMessage().contains("unavailable: java.lang.IllegalStateException: no efa device found"), e.getMessage());
    }

    @Test
    void shouldNotAutoSelectTestOnlyProviders() {
        MooncakeException e = assertThrows(MooncakeException.class,
                () -> TransportSelector.select(config(Map.of()), List.of(new InMemoryTransportProvider(), efa)));
        assertTrue(e.getMessage().contains("no transport available"), e.getMessage());
    }

    @Test
    void shouldDiscoverThroughServiceLoaderAndContextClassLoader(@TempDir Path dir) throws Exception {
        assertTrue(ProviderLoader.load(TransportProvider.class).stream()
                .anyMatch(p -> p instanceof InMemoryTransportProvider), "found via the SPI classloader");
        Path services = dir.resolve("META-INF/services");
        Files.createDirectories(services);
        Files.writeString(services.resolve(TransportProvider.class.getName()), ContextOnly.class.getName() + "\n");
        assertTrue(ProviderLoader.load(TransportProvider.class).stream().noneMatch(p -> p instanceof ContextOnly));
        Thread t = Thread.currentThread();
        ClassLoader saved = t.getContextClassLoader();
        try (URLClassLoader loader = new URLClassLoader(new URL[] {dir.toUri().toURL()}, saved)) {
            t.setContextClassLoader(loader);
            List<TransportProvider> found = ProviderLoader.load(TransportProvider.class);
            assertTrue(found.stream().anyMatch(p -> p instanceof ContextOnly), "found via the context classloader");
            assertEquals(1, found.stream().filter(p -> p.getClass() == InMemoryTransportProvider.class).count(), "no duplicates");
            assertEquals("ctx-only", TransportSelector.select(
                    EngineConfig.builder().environment(Map.of()).protocol("ctx-only").build()).protocol());
        } finally {
            t.setContextClassLoader(saved);
        }
    }

    /**
     * A provider whose availability depends on the engine's own settings (which device it is told to
     * use), as efa's does on its libfabric provider: the engine's settings decide, not the process
     * environment that the no-argument methods read.
     */
    static final class SettingDependent extends Fake {
        SettingDependent() {
            super("dev", false, 7);
        }

        @Override
        public Throwable unavailabilityCause(EngineConfig config) {
            String device = config.get("TEST_DEVICE", "none");
            return device.equals("present") ? null : new IllegalStateException("no device '" + device + "'");
        }

        @Override
        public boolean isAutoSelectable(EngineConfig config) {
            return config.get("TEST_DEVICE", "none").equals("present");
        }
    }

    @Test
    void shouldAskProvidersAboutTheEnginesOwnSettings() {
        TransportProvider dev = new SettingDependent();
        TransportProvider tcp = new Fake("tcp", true, 5);
        EngineConfig told = EngineConfig.builder().environment(Map.of()).protocol("dev").set("TEST_DEVICE", "present").build();
        assertSame(dev, TransportSelector.select(told, List.of(tcp, dev)), "named, and available with these settings");
        EngineConfig auto = EngineConfig.builder().environment(Map.of()).set("TEST_DEVICE", "present").build();
        assertSame(dev, TransportSelector.select(auto, List.of(tcp, dev)), "auto-selected with these settings (priority 7)");
        assertSame(tcp, TransportSelector.select(config(Map.of()), List.of(tcp, dev)), "not without them");
        MooncakeException e = assertThrows(MooncakeException.class, () -> TransportSelector.select(
                EngineConfig.builder().environment(Map.of()).protocol("dev").set("TEST_DEVICE", "gone").build(), List.of(tcp, dev)));
        assertTrue(e.getMessage().contains("no device 'gone'"), e.getMessage());
    }
}
