package io.mooncake4j.metadata.etcd;

import io.mooncake4j.testkit.ModuleBoundary;
import org.junit.jupiter.api.Test;

class EtcdModuleBoundaryTest {
    @Test
    void shouldNotUseTheEngineInternals() {
        ModuleBoundary.checkNoInternalAccess(EtcdMetadataStoreProvider.class, EtcdModuleBoundaryTest.class);
    }
}
