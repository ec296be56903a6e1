package io.mooncake4j.transport.efa;

import static io.mooncake4j.testkit.AbstractTransportConformanceTest.assertSameBytes;
import static io.mooncake4j.testkit.AbstractTransportConformanceTest.fillRandom;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.EngineConfig;
import io.mooncake4j.HostMemory;
import io.mooncake4j.MemoryLocation;
import io.mooncake4j.Segment;
import io.mooncake4j.TransferBatch;
import io.mooncake4j.TransferEngine;
import io.mooncake4j.TransferStatus;
import io.mooncake4j.testkit.TargetProcessHandle;
import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A peer in another JVM stopped (SIGSTOP) while READs from it are posted: libfabric cannot cancel
 * them, so they time out with the provider still holding them. Unregistering their memory must
 * stop them (the transport resets the endpoint) instead of failing with pins held, and the engine
 * must go on working with another peer, on the same memory registered again.
 */
@Tag("integration")
@Timeout(120)
class EfaStoppedPeerTest {
    private static final Duration DEADLINE = Duration.ofSeconds(2); // MC_TRANSFER_TIMEOUT below
    private static final int BLOCK = 1 << 20;
    private static final int BLOCKS = 4;

    @Test
    void shouldReleaseTimedOutReadsWhenTheirMemoryIsUnregisteredAndKeepServingAnotherPeer() throws Exception {
        long size = (long) BLOCK * BLOCKS;
        try (TransferEngine engine = EfaEngineTest.engine("tcp;ofi_rxm", EngineConfig.TRANSFER_TIMEOUT, "2");
                HostMemory memory = engine.allocate(size);
                TargetProcessHandle stopped = TargetProcessHandle.start("efa", size);
                TargetProcessHandle healthy = TargetProcessHandle.start("efa", size)) {
            Segment toStop = engine.openSegment(stopped.segment);
            Segment other = engine.openSegment(healthy.segment);
            fillRandom(memory.address(), BLOCK, 1);
            engine.write(toStop, memory.address(), stopped.address, BLOCK); // connected and working
            engine.write(other, memory.address(), healthy.address, BLOCK);

            stopped.stop();
            TransferBatch reads = engine.newBatch(BLOCKS);
            for (int i = 0; i < BLOCKS; i++) {
                reads.read(toStop, memory.address() + (long) i * BLOCK, stopped.address + (long) i * BLOCK, BLOCK);
            }
            reads.submit();
            assertTrue(reads.await(DEADLINE.plusSeconds(10)), "the reads end at their deadline");
            for (int i = 0; i < BLOCKS; i++) {
                assertEquals(TransferStatus.TIMEOUT, reads.status(i), "read " + i + ": " + reads.failureReason(i));
            }

            // Throws REGISTRATION ("transfers still use it") when the provider still holds the reads.
            engine.unregisterMemory(memory.address());

            engine.registerMemory(memory.address(), size, MemoryLocation.CPU);
            fillRandom(memory.address(), size, 7);
            engine.write(other, memory.address(), healthy.address, size);
            try (HostMemory back = engine.allocate(size)) {
                engine.read(other, back.address(), healthy.address, size);
                assertSameBytes(memory.address(), back.address(), size, "round trip with the other peer");
            }

            stopped.resume();
            fillRandom(memory.address(), BLOCK, 9);
            engine.write(toStop, memory.address(), stopped.address, BLOCK);
            try (HostMemory back = engine.allocate(BLOCK)) {
                engine.read(toStop, back.address(), stopped.address, BLOCK);
                assertSameBytes(memory.address(), back.address(), BLOCK, "round trip with the resumed peer");
            }
        }
    }
}
