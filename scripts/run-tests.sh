#!/usr/bin/env bash
# Set-up and the whole test suite: installs Debian dependencies, builds every module (the JNI
# library included) and runs all tests with the Maven pinned by the wrapper, on the default JDK.
# When a JDK 25 is present (JDK25_HOME, or Temurin 25 at its Debian path), the engine modules'
# tests (native, spi, both transports, etcd) run again on it, so both supported JDKs are checked.
# Then each fuzz target fuzzes briefly (FUZZ_SECONDS each, default 20; scripts/fuzz.sh runs longer).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
./mvnw -B -ntp "$@" install
jdk25=${JDK25_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
if [ -x "$jdk25/bin/java" ]; then
  echo "== engine modules again on $("$jdk25/bin/java" -version 2>&1 | head -1)"
  JAVA_HOME="$jdk25" ./mvnw -B -ntp -o "$@" -pl native,spi,plugin-tcp,plugin-efa,metadata-etcd verify
fi
scripts/fuzz.sh "${FUZZ_SECONDS:-20}" -o "$@"
