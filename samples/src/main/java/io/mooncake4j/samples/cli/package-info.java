/**
 * The {@code mooncake4j} command line ({@link io.mooncake4j.samples.cli.Main}, run by {@code
 * bin/mooncake4j}) and what its subcommands share: engine flags, size values, exit codes.
 */
package io.mooncake4j.samples.cli;
