package io.mooncake4j.testkit;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.Location;
import com.tngtech.archunit.lang.ArchRule;
import java.net.URISyntaxException;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * The rule every module outside {@code spi} runs from its tests: its code (main and test) does not
 * use {@code io.mooncake4j.internal..}, the engine's own packages, whose types change without notice.
 * A module calls {@link #checkNoInternalAccess} with one class from each of its output folders.
 */
public final class ModuleBoundary {
    /** No class may depend on the engine's internal packages. */
    public static final ArchRule NO_INTERNAL_ACCESS =
            noClasses()
                    .should()
                    .dependOnClassesThat()
                    .resideInAPackage("io.mooncake4j.internal..")
                    .because(
                            "io.mooncake4j.internal belongs to the spi module and changes without"
                                    + " notice: use the API (io.mooncake4j, io.mooncake4j.metadata) or"
                                    + " the SPI (io.mooncake4j.spi), or add what is missing there");

    private ModuleBoundary() {}

    /**
     * Checks {@link #NO_INTERNAL_ACCESS} on every class in the folders or jars that hold {@code
     * anchors} (e.g. one main class and the test itself). Fails on an empty import, so a wrong
     * anchor cannot make the check pass vacuously.
     */
    public static void checkNoInternalAccess(Class<?>... anchors) {
        NO_INTERNAL_ACCESS.check(importLocationsOf(anchors));
    }

    /** Every class in the folders or jars that hold {@code anchors}. */
    public static JavaClasses importLocationsOf(Class<?>... anchors) {
        Set<Location> locations = new LinkedHashSet<>();
        for (Class<?> anchor : anchors) {
            try {
                locations.add(Location.of(anchor.getProtectionDomain().getCodeSource().getLocation().toURI()));
            } catch (URISyntaxException e) {
                throw new IllegalStateException("cannot locate the classes of " + anchor, e);
            }
        }
        return new ClassFileImporter().importLocations(locations);
    }
}
