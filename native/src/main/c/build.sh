#!/usr/bin/env bash
# Builds the JNI library into the module's classes so that the jar carries it.
# Usage: build.sh JAVA_HOME OUTPUT_DIR
set -euo pipefail
java_home=$1
out=$2
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
if ! command -v gcc >/dev/null; then
  echo "gcc not found: install it (apt-get install gcc) to build the JNI library" >&2
  exit 1
fi
gcc -O2 -g -fPIC -shared -std=c11 -Wall -Wextra -Werror -fvisibility=hidden \
  -I"$java_home/include" -I"$java_home/include/linux" \
  -o "$out/libmooncake4j.so" "$src/mooncake4j_native.c"
