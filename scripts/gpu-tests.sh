#!/usr/bin/env bash
# The GPU test runner (#10). Builds gpu-cuda here, packs what the GPU machine needs into .gpu-run/
# (git-ignored, under 64 MiB: a jlink'ed JDK 17 runtime, the jars with JCuda's natives, the test
# classes, JUnit's console launcher and run.sh), and prints the device-tool call that runs, there,
# the gpu-tagged tests and the GPU bench in one go, with reports written to $OUT.
#
#   scripts/gpu-tests.sh            # offline build (the Maven cache holds JCuda and the launcher)
#   MVN_ONLINE=1 scripts/gpu-tests.sh   # once, to download them
#
# The device tool is a tool of the agent session, not a shell command: call
#   run(command="bash .gpu-run/run.sh", carry=[".gpu-run"], timeout_s=600)
# from the checkout the session sends (copy .gpu-run/ there when this is another worktree, and
# list .gpu-run/ in that checkout's .git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pack=$root/.gpu-run
jdk=${JDK17_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
console_version=1.11.3 # the JUnit Platform of the junit-bom 5.11.3 the build uses
offline=-o
[ "${MVN_ONLINE:-0}" = 1 ] && offline=

rm -rf "$pack"
mkdir -p "$pack/lib"
# the samples jar for bench --use_vram (its own reactor run: its dependencies are not packed, only picocli)
./mvnw -B -ntp $offline -q -pl samples -am package -DskipTests
# one reactor run, so the engine's own jars come from this checkout and never from ~/.m2
./mvnw -B -ntp $offline -q -pl gpu-cuda -am package dependency:copy-dependencies \
    -DskipTests -DincludeScope=test -DexcludeGroupIds=io.mooncake4j -DexcludeArtifactIds=junit-platform-console-standalone,pytorch-native-cpu,pytorch-jni,pytorch-engine,jazzer,jazzer-api,jazzer-junit,archunit,mockito-core,byte-buddy,byte-buddy-agent \
    -DoutputDirectory="$pack/lib"
# the spi's test jar brings the in-memory test transport the engine-level GPU tests and bench start on
cp native/target/mooncake4j-native-*[0-9T].jar spi/target/mooncake4j-spi-*[0-9T].jar spi/target/mooncake4j-spi-*-tests.jar \
    plugin-tcp/target/mooncake4j-plugin-tcp-*[0-9T].jar plugin-efa/target/mooncake4j-plugin-efa-*[0-9T].jar djl-connector/target/mooncake4j-djl-connector-*[0-9T].jar \
    gpu-cuda/target/mooncake4j-gpu-cuda-*[0-9T].jar samples/target/mooncake4j-samples-*[0-9T].jar "$pack/lib/"
cp -r gpu-cuda/target/test-classes "$pack/test-classes"
./mvnw -B -ntp $offline -q dependency:copy -Dartifact=org.slf4j:slf4j-simple:2.0.16 -DoutputDirectory="$pack/lib"
./mvnw -B -ntp $offline -q dependency:copy -Dartifact=info.picocli:picocli:4.7.6 -DoutputDirectory="$pack/lib"
./mvnw -B -ntp $offline -q dependency:copy \
    -Dartifact=org.junit.platform:junit-platform-console-standalone:$console_version -DoutputDirectory="$pack"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# java.xml is for the console launcher's XML reports; the rest is what the engine needs
"$jdk/bin/jlink" --add-modules java.base,java.logging,jdk.unsupported,java.management,jdk.management,java.naming,java.xml \
    --compress=2 --strip-debug --no-header-files --no-man-pages --output "$tmp/jre"
tar -C "$tmp" -czf "$pack/jre.tar.gz" jre

cat > "$pack/run.sh" <<'RUN'
#!/usr/bin/env bash
# On the GPU machine, from the checkout's root: the gpu-tagged tests, then the GPU bench, then
# bench --use_vram --verify between two processes and in one (their lines appended to bench.txt).
# Writes device.txt, tests.txt, junit/*.xml and bench.txt under $OUT; exits with the tests' status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out/junit"
rm -rf /tmp/mc4j-jre && mkdir -p /tmp/mc4j-jre && tar -C /tmp/mc4j-jre -xzf "$here/jre.tar.gz"
java=/tmp/mc4j-jre/jre/bin/java
cp="$here/test-classes:$(ls "$here"/lib/*.jar | tr '\n' ':')"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; "$java" -version 2>&1; date -u; } | tee "$out/device.txt"
# the launcher on the class path (not -jar), so java.class.path names everything and the
# two-process tests start their child JVMs with it
timeout 420 "$java" -Dmooncake4j.gpu.required=true -cp "$cp:$(ls "$here"/junit-platform-console-standalone-*.jar)" \
    org.junit.platform.console.ConsoleLauncher execute --disable-banner --scan-class-path "$here/test-classes" --include-tag gpu --fail-if-no-tests \
    --details=tree --disable-ansi-colors --reports-dir "$out/junit" 2>&1 | tee "$out/tests.txt"
status=${PIPESTATUS[0]}
timeout 150 "$java" -cp "$cp" io.mooncake4j.gpu.cuda.GpuCopyBench 2>&1 | tee "$out/bench.txt"
timeout 120 "$java" -cp "$cp" io.mooncake4j.gpu.cuda.CudaIpcBench 2>&1 | tee -a "$out/bench.txt"
timeout 120 "$java" -cp "$cp" io.mooncake4j.gpu.cuda.GpuTcpBench 2>&1 | tee -a "$out/bench.txt"
# bench --use_vram --verify, target + initiator on cuda:0, 5 s: its header, verify and closing lines
bench="$java -cp $cp io.mooncake4j.samples.cli.Main bench --local_server_name=127.0.0.1 --use_vram --buffer_size=256M"
seg=/tmp/mc4j-vram-target; rm -f "$seg"
sleep 120 | timeout 100 $bench --mode=target --segment_file="$seg" --exit_on_stdin_close >/tmp/mc4j-vram-target.log 2>&1 &
for _ in $(seq 300); do { [ -s "$seg" ] || ! kill -0 $! 2>/dev/null; } && break; sleep 0.1; done
timeout 60 $bench --segment_id="$(cat "$seg" 2>/dev/null)" --operation=write --threads=4 --duration=5 --verify 2>&1 \
    | tee "$out/vram-two-process.log" | grep -E '^(Initiator|Verify|Test completed|mooncake4j bench)' | tee -a "$out/bench.txt"
kill %1 2>/dev/null; cp /tmp/mc4j-vram-target.log "$out/vram-target.log"
# the same in one process (device to device through the engine's copier), for comparison
timeout 60 $bench --segment_id=self --operation=write --threads=4 --duration=5 --verify 2>&1 \
    | tee "$out/vram-self.log" | grep -E '^(Initiator|Verify|Test completed|mooncake4j bench)' | tee -a "$out/bench.txt"
echo "gpu tests exit status: $status"
exit "$status"
RUN
chmod +x "$pack/run.sh"

size=$(du -sm "$pack" | cut -f1)
if [ "$size" -ge 64 ]; then
  echo "error: $pack is $size MiB; the device tool carries at most 64 MiB" >&2
  exit 1
fi
echo "== packed $pack ($size MiB)"
echo "== run it on the GPU machine with the session's device tool (not a shell command):"
echo '   run(command="bash .gpu-run/run.sh", carry=[".gpu-run"], timeout_s=600)'
