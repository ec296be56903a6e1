#!/usr/bin/env bash
# Coverage-guided fuzzing (Jazzer) of what a peer's bytes reach: the handshake frame parser, the
# segment descriptor decoder, the TCP request header and bounds check, the connector's messages.
# Every fuzz test fuzzes for SECONDS (default 300) in a JVM of its own; what the fuzzer learns
# stays in <module>/.cifuzz-corpus/ (not committed) for the next run.
# A finding fails the run and is written as crash-<sha1> into the test's committed inputs folder,
# src/test/resources/<package>/<TestClass>Inputs/<method>/, which every `mvn verify` replays.
# docs/testing.md says more. Usage: scripts/fuzz.sh [SECONDS] [Maven options, e.g. -o]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
if [[ ! "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [Maven options]: SECONDS per fuzz test, a positive integer" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))
log=$(mktemp -t mooncake4j-fuzz.XXXXXX)
echo "== fuzzing each *FuzzTest for ${seconds}s (log: $log)"
rc=0
# reuseForks=false: one JVM per test class, and Jazzer fuzzes one test per JVM. JUnit's timeout
# would bound the whole fuzzing run: Jazzer applies a test's @Timeout to each input instead.
# Gson is instrumented too, so the fuzzer also sees which JSON syntax paths an input takes.
JAZZER_FUZZ=1 JAZZER_MAX_DURATION="${seconds}s" JAZZER_INSTRUMENT='io.mooncake4j.**,com.google.gson.**' \
  ./mvnw -B -ntp "$@" -pl spi,plugin-tcp,djl-connector -am test \
    -Dtest='*FuzzTest' -Dsurefire.failIfNoSpecifiedTests=false -DreuseForks=false \
    -Djunit.jupiter.execution.timeout.mode=disabled \
    >"$log" 2>&1 || rc=$?
grep -E '^Done [0-9]+ runs|Tests run:.*in io\.|Test unit written to|FuzzTestFinding|BUILD (SUCCESS|FAILURE)' "$log" || true
if [ "$rc" -ne 0 ]; then
  echo "== fuzzing failed (exit $rc): a finding above is a bug; its input is in the inputs folder named" >&2
  echo "   after 'Test unit written to'. Fix it, keep the input as a regression input. Log: $log" >&2
fi
exit "$rc"
