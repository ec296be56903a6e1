package io.mooncake4j.spi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.internal.Devices;
import java.util.List;
import org.junit.jupiter.api.Test;

class DeviceMemoryProvidersTest {
    @Test
    void shouldRefuseCudaNamingWhatToAddWhenNoProviderIsOnTheClassPath() {
        MooncakeException e = assertThrows(MooncakeException.class, () -> Devices.load().providers().require(MemoryLocation.cuda(0)));
        assertEquals(ErrorCode.REGISTRATION, e.code());
        assertTrue(e.getMessage().contains("no provider of 'cuda' memory is on the class path"), e.getMessage());
        assertTrue(e.getMessage().contains("io.mooncake4j:mooncake4j-gpu-cuda"), e.getMessage());
        assertTrue(e.getMessage().contains("org.jcuda:jcuda:12.6.0"), e.getMessage());
    }

    @Test
    void shouldSayWhyEachProviderDeclinedWhenNoneIsAvailable() {
        DeviceMemoryProviders providers = new DeviceMemoryProviders(List.of(new Fake(false, 0)));
        MooncakeException e = assertThrows(MooncakeException.class, () -> providers.require(MemoryLocation.cuda(0)));
        assertTrue(e.getMessage().contains(Fake.class.getName() + " is unavailable: libcuda.so.1 is missing"), e.getMessage());
    }

    @Test
    void shouldRefuseADeviceIndexPastTheDeviceCount() {
        DeviceMemoryProviders providers = new DeviceMemoryProviders(List.of(new Fake(true, 1)));
        MooncakeException e = assertThrows(MooncakeException.class, () -> providers.require(MemoryLocation.cuda(1)));
        assertTrue(e.getMessage().contains("sees 1 device(s), so cuda:1 does not exist"), e.getMessage());
    }

    @Test
    void shouldReturnTheAvailableProviderWhenItHasTheDevice() {
        Fake fake = new Fake(true, 2);
        assertSame(fake, new DeviceMemoryProviders(List.of(fake)).require(MemoryLocation.cuda(1)));
    }

    private static final class Fake extends DeviceMemoryProvider {
        private final boolean available;
        private final int devices;

        Fake(boolean available, int devices) {
            this.available = available;
            this.devices = devices;
        }

        @Override
        public String kind() {
            return "cuda";
        }

        @Override
        public boolean isAvailable() {
            return available;
        }

        @Override
        public Throwable unavailabilityCause() {
            return available ? null : new IllegalStateException("libcuda.so.1 is missing");
        }

        @Override
        public int deviceCount() {
            return devices;
        }

        @Override
        public MemoryLocation locate(long address) {
            throw new UnsupportedOperationException();
        }

        @Override
        public DeviceAllocation allocate(MemoryLocation location, long bytes) {
            throw new UnsupportedOperationException();
        }

        @Override
        public DeviceCopier openCopier(int device) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void forget(long address, long length) {}
    }
}
