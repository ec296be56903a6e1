package io.mooncake4j.transport.tcp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mooncake4j.Opcode;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class StripePlanTest {
    @Test
    void shouldCoverEveryByteExactlyOnceAcrossLanes() {
        SplittableRandom rnd = new SplittableRandom(7);
        long slice = 64 << 10;
        for (int round = 0; round < 200; round++) {
            int lanes = 1 + rnd.nextInt(8);
            int n = 1 + rnd.nextInt(40);
            TcpTestKit.FakeSubmission s = new TcpTestKit.FakeSubmission(n);
            for (int i = 0; i < n; i++) {
                long len = rnd.nextBoolean() ? 1 + rnd.nextInt(4096) : 1 + rnd.nextInt(1 << 20);
                s.set(i, Opcode.WRITE, 0, 0, len);
                s.cuda[i] = rnd.nextInt(20) == 0;
                s.remoteCuda[i] = rnd.nextInt(20) == 0;
            }
            int start = rnd.nextInt(lanes);
            boolean skipGpu = rnd.nextBoolean(); // local GPU memory refused (no device provider, v1 peer)
            long[] covered = new long[n];
            int[] parts = new int[n];
            long mask = 0;
            for (int lane = 0; lane < lanes; lane++) {
                StripePlan p = new StripePlan();
                p.reset(s, start, lane, lanes, slice, skipGpu);
                long[] nextOffset = new long[n];
                while (p.next()) {
                    int i = p.request;
                    assertTrue(!skipGpu || !s.cuda[i], "a refused request is never planned");
                    assertTrue(p.length > 0 && p.length <= slice, "part within slice");
                    assertTrue(p.offset + p.length <= s.length[i]);
                    assertTrue(p.offset >= nextOffset[i], "parts of a request in order on a lane");
                    nextOffset[i] = p.offset + p.length;
                    covered[i] += p.length;
                    parts[i]++;
                    mask |= 1L << lane;
                }
            }
            for (int i = 0; i < n; i++) {
                if (skipGpu && s.cuda[i]) {
                    assertEquals(0, covered[i]);
                } else {
                    assertEquals(s.length[i], covered[i], "request " + i);
                    assertEquals(StripePlan.partsOf(s.length[i], slice), parts[i]);
                }
            }
            assertEquals(StripePlan.laneMask(s, start, lanes, slice, skipGpu), mask);
        }
    }

    @Test
    void shouldLookAheadToExactlyTheNextPartWithoutMovingThePlan() {
        SplittableRandom rnd = new SplittableRandom(11);
        long slice = 64 << 10;
        for (int round = 0; round < 100; round++) {
            int lanes = 1 + rnd.nextInt(8);
            int n = 1 + rnd.nextInt(40);
            TcpTestKit.FakeSubmission s = new TcpTestKit.FakeSubmission(n);
            for (int i = 0; i < n; i++) {
                // mostly small requests, so that a lane gathers several before the cursor moves on
                s.set(i, Opcode.WRITE, 0, 0, rnd.nextInt(4) != 0 ? 1 + rnd.nextInt(16 << 10) : 1 + rnd.nextInt(1 << 20));
                s.cuda[i] = rnd.nextInt(5) == 0;
            }
            boolean skipGpu = rnd.nextBoolean();
            int lane = rnd.nextInt(lanes);
            StripePlan p = new StripePlan();
            p.reset(s, rnd.nextInt(lanes), lane, lanes, slice, skipGpu);
            StripePlan ahead = new StripePlan(); // a fresh one each time: it must take every field it needs
            ahead.copyFrom(p); // before the first part, too
            boolean expected = ahead.next();
            int steps = 0;
            while (true) {
                int request = ahead.request;
                long offset = ahead.offset;
                long length = ahead.length;
                assertEquals(expected, p.next(), "round " + round + ", step " + steps);
                if (!expected) {
                    break;
                }
                assertEquals(request, p.request);
                assertEquals(offset, p.offset);
                assertEquals(length, p.length);
                ahead = new StripePlan();
                ahead.copyFrom(p);
                expected = ahead.next();
                steps++;
            }
        }
    }

    @Test
    void shouldKeepSmallBatchesOnFewLanes() {
        TcpTestKit.FakeSubmission s = new TcpTestKit.FakeSubmission(128);
        for (int i = 0; i < 128; i++) {
            s.set(i, Opcode.WRITE, 0, 0, 4096);
        }
        assertEquals(1L << 2, StripePlan.laneMask(s, 2, 4, 1 << 20, false));
        for (int i = 0; i < 128; i++) {
            s.set(i, Opcode.WRITE, 0, 0, 1 << 20);
        }
        assertEquals(0b1111, StripePlan.laneMask(s, 0, 4, 1 << 20, false));
    }
}
