#!/usr/bin/env bash
# Builds the JNI library into the module's classes so that the jar carries it. libfabric is compiled
# against (Debian's libfabric-dev headers) but never linked: it is opened with dlopen at run time.
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
if [ ! -f /usr/include/rdma/fabric.h ]; then
  echo "libfabric headers not found: run scripts/install-deps.sh (apt-get install libfabric-dev)" >&2
  exit 1
fi
gcc -O2 -g -fPIC -shared -std=gnu11 -Wall -Wextra -Werror -fvisibility=hidden \
  -I"$java_home/include" -I"$java_home/include/linux" \
  -o "$out/libmooncake4j.so" "$src/mooncake4j_native.c" "$src/mooncake4j_fabric.c" -ldl
# No libfabric symbol may stay unresolved: the library must load on hosts without libfabric.
if nm -D --undefined-only "$out/libmooncake4j.so" | grep -w 'fi_[a-z_]*'; then
  echo "libmooncake4j.so references libfabric symbols directly; call them through dlsym" >&2
  exit 1
fi
