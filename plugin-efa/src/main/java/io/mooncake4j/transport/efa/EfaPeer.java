package io.mooncake4j.transport.efa;

import io.mooncake4j.metadata.SegmentDescriptor;
import java.util.Arrays;
import java.util.List;

/**
 * A peer segment as the EFA transport reaches it: its devices' endpoint addresses in every local
 * NIC's address vector ({@code dest[localNic][peerDevice]}), filled by the Connection handshake.
 * Local NIC {@code k} sends to peer device {@code k % devices}.
 */
final class EfaPeer {
    final String segment;
    final List<String> gids;
    final String[] deviceNames;
    final long[][] dest;
    private volatile SegmentDescriptor lastSeen;

    EfaPeer(String segment, List<String> deviceNames, List<String> gids, int localNics) {
        this.segment = segment;
        this.gids = List.copyOf(gids);
        this.deviceNames = deviceNames.toArray(String[]::new);
        this.dest = new long[localNics][deviceNames.size()];
        for (long[] row : dest) {
            Arrays.fill(row, -1);
        }
    }

    /** The index of the peer's device {@code name}, or -1. */
    int deviceIndex(String name) {
        return Arrays.asList(deviceNames).indexOf(name);
    }

    /** The peer device that local NIC {@code nic} sends to. */
    int deviceFor(int nic) {
        return nic % deviceNames.length;
    }

    /** The destination address for local NIC {@code nic}. */
    long destFor(int nic) {
        return dest[nic][deviceFor(nic)];
    }

    /** Whether this is still the peer that {@code descriptor} describes (same device addresses). */
    boolean matches(SegmentDescriptor descriptor) {
        if (descriptor == lastSeen) {
            return true;
        }
        boolean same = EfaDescriptors.devices(descriptor, "gid").equals(gids);
        if (same) {
            lastSeen = descriptor;
        }
        return same;
    }
}
