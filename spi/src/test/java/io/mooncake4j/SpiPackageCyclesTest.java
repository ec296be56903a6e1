package io.mooncake4j;

import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.lang.EvaluationResult;
import com.tngtech.archunit.library.dependencies.SliceAssignment;
import com.tngtech.archunit.library.dependencies.SliceIdentifier;
import io.mooncake4j.testkit.ModuleBoundary;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Package cycles among the spi module's own packages, one slice per package.
 *
 * <p>Every known cycle runs through the root package, which holds both the facade ({@link
 * TransferEngine}, {@link TransferBatch}, {@link Segment}, {@code SegmentSubmission}), which uses
 * every other package, and the value types that every other package uses ({@link EngineConfig},
 * {@link ErrorCode}, {@link MooncakeException}, {@link MemoryRegion}, {@link Opcode}, {@link
 * TransferStatus}). Breaking them means moving one of those two groups of public types to its own
 * package. Until then this test pins the known cycles: a new one fails the build, and so does
 * breaking one without removing it here.
 */
class SpiPackageCyclesTest {
    private static final Set<String> KNOWN_CYCLES =
            Set.of(
                    "io.mooncake4j -> io.mooncake4j.internal",
                    "io.mooncake4j -> io.mooncake4j.internal -> io.mooncake4j.spi",
                    "io.mooncake4j -> io.mooncake4j.internal -> io.mooncake4j.spi -> io.mooncake4j.metadata",
                    "io.mooncake4j -> io.mooncake4j.internal.handshake",
                    "io.mooncake4j -> io.mooncake4j.internal.handshake -> io.mooncake4j.spi",
                    "io.mooncake4j -> io.mooncake4j.internal.handshake -> io.mooncake4j.spi -> io.mooncake4j.metadata",
                    "io.mooncake4j -> io.mooncake4j.metadata",
                    "io.mooncake4j -> io.mooncake4j.spi",
                    "io.mooncake4j -> io.mooncake4j.spi -> io.mooncake4j.metadata");

    private static final Pattern SLICE = Pattern.compile("Slice ([\\w.$]+)");

    /** One slice per package of the module, the root package included. */
    private static final SliceAssignment BY_PACKAGE =
            new SliceAssignment() {
                @Override
                public SliceIdentifier getIdentifierOf(JavaClass c) {
                    String p = c.getPackageName();
                    return p.equals("io.mooncake4j") || p.startsWith("io.mooncake4j.")
                            ? SliceIdentifier.of(p)
                            : SliceIdentifier.ignore();
                }

                @Override
                public String getDescription() {
                    return "the packages of the spi module";
                }
            };

    @Test
    void shouldHaveNoPackageCyclesButTheKnownOnes() {
        EvaluationResult result =
                slices().assignedFrom(BY_PACKAGE)
                        .should()
                        .beFreeOfCycles()
                        .evaluate(ModuleBoundary.importLocationsOf(TransferEngine.class));
        Set<String> found = new TreeSet<>();
        for (String detail : result.getFailureReport().getDetails()) {
            found.add(cycleOf(detail));
        }

        assertEquals(
                new TreeSet<>(KNOWN_CYCLES),
                found,
                "package cycles in spi changed; a new cycle must be broken (see the class comment),"
                        + " a broken one removed from KNOWN_CYCLES. Details:\n"
                        + String.join("\n", result.getFailureReport().getDetails()));
    }

    /** The cycle's packages, from ArchUnit's "Cycle detected: Slice a -> Slice b -> Slice a" header, starting at the smallest. */
    private static String cycleOf(String detail) {
        int end = detail.indexOf("1. Dependencies of");
        Matcher m = SLICE.matcher(end < 0 ? detail : detail.substring(0, end));
        List<String> slices = new ArrayList<>();
        while (m.find()) {
            slices.add(m.group(1));
        }
        if (slices.size() > 1 && slices.get(0).equals(slices.get(slices.size() - 1))) {
            slices.remove(slices.size() - 1);
        }
        Collections.rotate(slices, -slices.indexOf(Collections.min(slices)));
        return String.join(" -> ", slices);
    }
}
