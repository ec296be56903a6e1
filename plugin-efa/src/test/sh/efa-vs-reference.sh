#!/usr/bin/env bash
# The EFA transport next to the C reference loop (native/src/test/c/fabric_rma_bench.c) and the TCP
# transport, same provider, sizes and run: docs/benchmarks.md ("EFA transport on libfabric's
# software providers") was made with it.
#
#   plugin-efa/src/test/sh/efa-vs-reference.sh [SECONDS]
#
# JAVA (default: java), CP (default: samples/target/mooncake4j-samples jar + samples/target/lib/*),
# REF (default: native/target/fabric_rma_bench), WINDOW (default 64: operations in flight; the
# bench gets --threads=THREADS --batch_size=WINDOW/THREADS, THREADS default 2), PROVIDERS (default
# "tcp;ofi_rxm shm"), OPS (default "write read"), SIZES (default "65536 1048576"), COMPARE_TCP
# (default 1: also run the TCP plugin; 0 skips it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../../.." && pwd)
secs=${1:-4}
java=${JAVA:-java}
cp=${CP:-"$root/samples/target/mooncake4j-samples-0.1.0-SNAPSHOT.jar:$root/samples/target/lib/*"}
ref=${REF:-"$root/native/target/fabric_rma_bench"}
window=${WINDOW:-64}
threads=${THREADS:-2}
providers=${PROVIDERS:-"tcp;ofi_rxm shm"}
ops=${OPS:-"write read"}
sizes=${SIZES:-"65536 1048576"}
tmp=$(mktemp -d)
target_pid=
cleanup() {
  exec 3>&- 2>/dev/null || true
  [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

bench() { # protocol provider device op size
  local protocol=$1 provider=$2 device=$3 op=$4 size=$5
  export MC_EFA_PROVIDER=$provider MOONCAKE_DEVICE=$device
  rm -f "$tmp/segment" "$tmp/stdin"
  mkfifo "$tmp/stdin"
  "$java" --enable-native-access=ALL-UNNAMED -cp "$cp" io.mooncake4j.samples.cli.Main bench \
    --mode=target --protocol="$protocol" --local_server_name=127.0.0.1 --buffer_size=256M \
    --segment_file="$tmp/segment" --exit_on_stdin_close <"$tmp/stdin" >"$tmp/target.log" 2>&1 &
  target_pid=$!
  exec 3>"$tmp/stdin"
  for _ in $(seq 1 300); do [ -s "$tmp/segment" ] && break; sleep 0.1; done
  "$java" --enable-native-access=ALL-UNNAMED -cp "$cp" io.mooncake4j.samples.cli.Main bench \
    --protocol="$protocol" --segment_id="$(cat "$tmp/segment")" --operation="$op" \
    --block_size="$size" --batch_size=$((window / threads)) --threads="$threads" --duration="$secs" \
    --buffer_size=256M 2>&1 | grep -o 'throughput [0-9.]* GB/s' | tail -1
  exec 3>&-
  wait "$target_pid" 2>/dev/null || true
  target_pid=
}

printf '%-12s %-5s %-8s %-12s %-12s %-12s %s\n' provider op size "C ref GB/s" "efa GB/s" ratio "tcp plugin GB/s"
for provider in $providers; do
  node=127.0.0.1 device=lo
  [ "$provider" = shm ] && node="" && device=all
  for op in $ops; do
    for size in $sizes; do
      c=$("$ref" "$provider" "$op" "$size" "$window" "$secs" "$node" | grep -o 'throughput [0-9.]*' | awk '{print $2}')
      e=$(bench efa "$provider" "$device" "$op" "$size" | awk '{print $2}')
      t=-
      [ "$provider" != shm ] && [ "${COMPARE_TCP:-1}" = 1 ] && t=$(bench tcp "$provider" "$device" "$op" "$size" | awk '{print $2}')
      r=$(awk -v e="$e" -v c="$c" 'BEGIN { if (c > 0) printf "%.2f", e / c; else print "-" }')
      printf '%-12s %-5s %-8s %-12s %-12s %-12s %s\n' "$provider" "$op" "$size" "$c" "$e" "$r" "$t"
    done
  done
done
