package io.mooncake4j.samples;

import io.mooncake4j.samples.cli.JavaCommand;
import io.mooncake4j.samples.cli.Main;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Two test hosts on this machine, {@code <name>a} (10.77.0.1) and {@code <name>b} (10.77.0.2):
 * network namespaces joined by a veth pair, made by {@code scripts/netns-hosts.sh}. Needs root.
 */
public final class NetnsHosts implements AutoCloseable {
    public static final String A = "10.77.0.1";
    public static final String B = "10.77.0.2";
    private final Path script;
    private final String name;

    private NetnsHosts(Path script, String name) {
        this.script = script;
        this.name = name;
    }

    /** Makes the two hosts, or returns null (with the reason on stderr) where that is not possible. */
    public static NetnsHosts tryCreate(String tag) throws IOException, InterruptedException {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("scripts/netns-hosts.sh"))) {
            p = p.getParent();
        }
        boolean hasIp = new File("/usr/sbin/ip").canExecute() || new File("/sbin/ip").canExecute()
                || new File("/usr/bin/ip").canExecute();
        if (p == null || !hasIp) {
            return null;
        }
        NetnsHosts h = new NetnsHosts(p.resolve("scripts/netns-hosts.sh"),
                tag + (ProcessHandle.current().pid() % 10000));
        h.run("down");
        if (h.run("up") == 0) {
            return h;
        }
        h.run("down"); // whatever half of it was made
        return null;
    }

    private int run(String action) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("bash", script.toString(), action, name).redirectErrorStream(true).start();
        p.getInputStream().transferTo(System.err);
        return p.waitFor(30, TimeUnit.SECONDS) ? p.exitValue() : -1;
    }

    /** The command that runs {@code io.mooncake4j.samples.cli.Main args} in a JVM on host a or b. */
    public List<String> java(char host, String... args) {
        List<String> c = new ArrayList<>(List.of("ip", "netns", "exec", name + host));
        c.addAll(JavaCommand.current());
        c.add(Main.class.getName());
        c.addAll(List.of(args));
        return c;
    }

    @Override
    public void close() throws IOException, InterruptedException {
        run("down");
    }
}
