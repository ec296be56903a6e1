#!/usr/bin/env bash
# Builds the C reference loop (fabric_rma_bench) that the EFA transport's benchmark is compared with.
# It links libfabric directly: it is a test tool, never shipped. Usage: build.sh OUTPUT_DIR
set -euo pipefail
out=$1
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
gcc -O2 -g -std=gnu11 -Wall -Wextra -Werror -o "$out/fabric_rma_bench" "$src/fabric_rma_bench.c" -lfabric
