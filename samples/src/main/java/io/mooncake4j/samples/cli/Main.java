package io.mooncake4j.samples.cli;

import io.mooncake4j.ErrorCode;
import io.mooncake4j.MooncakeException;
import io.mooncake4j.samples.bench.BenchCommand;
import io.mooncake4j.samples.bench.ProbeCommand;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * The {@code mooncake4j} command that {@code bin/mooncake4j} runs. Each tool is a picocli
 * subcommand: to add one, list its class in {@code subcommands} below (one line); it gets {@code
 * --help}, the exit codes and the error handling of this class for free.
 *
 * <p>Exit codes: {@value #OK} success, {@value #FAILURE} failure (a transfer failed, verification
 * found a mismatch, the peer cannot be reached), {@value #USAGE} usage error (unknown flag, bad
 * value, missing {@code --segment_id}, an unsupported option).
 */
@Command(
        name = "mooncake4j",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        synopsisSubcommandLabel = "COMMAND",
        description = "Mooncake4j tools: a KV-cache transfer engine for the JVM, wire compatible with Mooncake.",
        footer = {"", "Run 'mooncake4j COMMAND --help' for a command's options."},
        subcommands = {
            CommandLine.HelpCommand.class,
            BenchCommand.class,
            ProbeCommand.class,
            io.mooncake4j.samples.soak.SoakCommand.class,
            // demo, generate, loadgen, router, prefill, decode: one line each, e.g. DemoCommand.class,
            io.mooncake4j.samples.serving.DemoCommand.class, io.mooncake4j.samples.serving.GenerateCommand.class, io.mooncake4j.samples.serving.LoadgenCommand.class, io.mooncake4j.samples.serving.RouterCommand.class, io.mooncake4j.samples.serving.PrefillCommand.class, io.mooncake4j.samples.serving.DecodeCommand.class,
        })
public final class Main implements Callable<Integer> {
    /** Success. */
    public static final int OK = CommandLine.ExitCode.OK;
    /** A failure at run time: transfer failed, verification mismatch, peer unreachable. */
    public static final int FAILURE = CommandLine.ExitCode.SOFTWARE;
    /** A usage error: unknown flag, bad value, missing or unsupported option. */
    public static final int USAGE = CommandLine.ExitCode.USAGE;

    @Spec CommandSpec spec;

    /** Runs the command line and exits the JVM with its exit code. */
    public static void main(String[] args) {
        configureLogging();
        System.exit(execute(
                new PrintWriter(System.out, true, StandardCharsets.UTF_8),
                new PrintWriter(System.err, true, StandardCharsets.UTF_8),
                args));
    }

    /**
     * Runs a command line in this JVM and returns its exit code (what tests call). Output goes to
     * {@code out}, progress and errors to {@code err}.
     */
    public static int execute(PrintWriter out, PrintWriter err, String... args) {
        return commandLine(out, err).execute(args);
    }

    /** The configured command line: Mooncake's flag habits and this project's exit codes. */
    public static CommandLine commandLine(PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        // gflags lets a later flag override an earlier one; scripts rely on it to append overrides.
        cl.setOverwrittenOptionsAllowed(true);
        // GB and Gb are different report units: enum values stay case sensitive.
        cl.setCaseInsensitiveEnumValuesAllowed(false);
        cl.setUsageHelpAutoWidth(true);
        cl.setParameterExceptionHandler(Main::onUsageError);
        for (CommandLine sub : cl.getSubcommands().values()) {
            if (sub.getCommandSpec().versionProvider() == null) {
                sub.getCommandSpec().versionProvider(new Version()); // so 'mooncake4j bench -V' works too
            }
        }
        cl.setExecutionExceptionHandler(Main::onFailure);
        return cl;
    }

    /** {@code mooncake4j} alone: show the commands, as a usage error. */
    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return USAGE;
    }

    private static int onUsageError(CommandLine.ParameterException ex, String[] args) {
        CommandLine cl = ex.getCommandLine();
        PrintWriter err = cl.getErr();
        String name = cl.getCommandSpec().qualifiedName();
        err.println(name + ": " + ex.getMessage());
        CommandLine.UnmatchedArgumentException.printSuggestions(ex, err);
        err.println("Run '" + name + " --help' for the options.");
        err.flush();
        return USAGE;
    }

    private static int onFailure(Exception ex, CommandLine cl, CommandLine.ParseResult parsed) {
        PrintWriter err = cl.getErr();
        String name = cl.getCommandSpec().qualifiedName();
        if (ex instanceof CommandFailure) {
            err.println(name + ": " + ex.getMessage());
            err.flush();
            return FAILURE;
        }
        if (ex instanceof MooncakeException me) {
            err.println(name + ": " + me.getMessage());
            err.flush();
            // CONFIGURATION means a setting the user gave is wrong: a usage error, not a failure.
            return me.code() == ErrorCode.CONFIGURATION ? USAGE : FAILURE;
        }
        err.println(name + ": unexpected error: " + ex);
        ex.printStackTrace(err);
        err.flush();
        return FAILURE;
    }

    /**
     * slf4j-simple settings for the tools, unless given with -D: the level from Mooncake's {@code
     * MC_LOG_LEVEL} (default info), on stderr so stdout stays for results.
     */
    private static void configureLogging() {
        String levelKey = "org.slf4j.simpleLogger.defaultLogLevel";
        if (System.getProperty(levelKey) == null) {
            String level = System.getenv("MC_LOG_LEVEL");
            System.setProperty(levelKey, level == null || level.isBlank() ? "info" : level.trim().toLowerCase());
        }
        if (System.getProperty("org.slf4j.simpleLogger.logFile") == null) {
            System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        }
    }

    /** The version from the Maven metadata in the jar. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = null;
            try (InputStream in = Main.class.getResourceAsStream(
                    "/META-INF/maven/io.mooncake4j/mooncake4j-samples/pom.properties")) {
                if (in != null) {
                    Properties p = new Properties();
                    p.load(in);
                    v = p.getProperty("version");
                }
            } catch (java.io.IOException e) {
                v = null;
            }
            return new String[] {"mooncake4j " + (v == null ? "(version unknown: not run from the built jar)" : v)};
        }
    }
}
