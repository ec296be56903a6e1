package io.mooncake4j;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.tngtech.archunit.core.domain.Dependency;
import com.tngtech.archunit.core.domain.JavaClass;
import io.mooncake4j.testkit.ModuleBoundary;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * Package cycles among the spi module's own packages.
 *
 * <p>The root package holds both the facade ({@link TransferEngine}, {@link TransferBatch}, {@link
 * Segment}, {@code SegmentSubmission}), which uses every other package, and the value types that
 * every other package uses ({@link EngineConfig}, {@link ErrorCode}, {@link MooncakeException},
 * {@link MemoryRegion}, {@link Opcode}, {@link TransferStatus}), so the packages below form one
 * tangle (a strongly connected component of the package graph). Breaking it means moving one of
 * those two groups of public types to its own package. Until then this test pins the tangle by its
 * members, not by its edges: a package that joins it (a new cycle) fails the build, and so does one
 * that leaves it without being removed here; a second tangle fails too.
 */
class SpiPackageCyclesTest {
    private static final Set<String> KNOWN_TANGLE = Set.of(
            "io.mooncake4j",
            "io.mooncake4j.internal",
            "io.mooncake4j.internal.auth",
            "io.mooncake4j.internal.handshake",
            "io.mooncake4j.metadata",
            "io.mooncake4j.spi");

    @Test
    void shouldHaveNoPackageCyclesButTheKnownTangle() {
        Map<String, Set<String>> graph = new TreeMap<>();
        for (JavaClass c : ModuleBoundary.importLocationsOf(TransferEngine.class)) {
            String from = c.getPackageName();
            graph.computeIfAbsent(from, k -> new TreeSet<>());
            for (Dependency d : c.getDirectDependenciesFromSelf()) {
                String to = d.getTargetClass().getPackageName();
                if (!to.equals(from) && (to.equals("io.mooncake4j") || to.startsWith("io.mooncake4j."))) {
                    graph.get(from).add(to);
                }
            }
        }
        Set<Set<String>> tangles = new TreeSet<>((a, b) -> a.toString().compareTo(b.toString()));
        for (Set<String> component : new Tarjan(graph).components()) {
            if (component.size() > 1) {
                tangles.add(component);
            }
        }
        assertEquals(Set.of(new TreeSet<>(KNOWN_TANGLE)), tangles,
                "package cycles in spi changed: a package that joined the tangle must be taken out of it"
                        + " again (see the class comment); one that left it must be removed from KNOWN_TANGLE."
                        + " Package graph: " + graph);
    }

    /** Tarjan's strongly connected components over a small package graph. */
    private static final class Tarjan {
        private final Map<String, Set<String>> graph;
        private final Map<String, Integer> index = new HashMap<>();
        private final Map<String, Integer> low = new HashMap<>();
        private final Deque<String> stack = new ArrayDeque<>();
        private final Set<String> onStack = new TreeSet<>();
        private final java.util.List<Set<String>> components = new java.util.ArrayList<>();

        Tarjan(Map<String, Set<String>> graph) {
            this.graph = graph;
        }

        java.util.List<Set<String>> components() {
            for (String v : graph.keySet()) {
                if (!index.containsKey(v)) {
                    visit(v);
                }
            }
            return components;
        }

        private void visit(String v) {
            index.put(v, index.size());
            low.put(v, index.get(v));
            stack.push(v);
            onStack.add(v);
            for (String w : graph.getOrDefault(v, Set.of())) {
                if (!index.containsKey(w)) {
                    visit(w);
                    low.put(v, Math.min(low.get(v), low.get(w)));
                } else if (onStack.contains(w)) {
                    low.put(v, Math.min(low.get(v), index.get(w)));
                }
            }
            if (low.get(v).equals(index.get(v))) {
                Set<String> component = new TreeSet<>();
                String w;
                do {
                    w = stack.pop();
                    onStack.remove(w);
                    component.add(w);
                } while (!w.equals(v));
                components.add(component);
            }
        }
    }
}
