#!/usr/bin/env bash
# Loopback bench: a target in the background and the initiator in the foreground, two processes on
# this host, as Mooncake's transfer_engine_bench is run across two.
#
#   scripts/bench-loopback.sh [initiator flags...]
#   scripts/bench-loopback.sh --verify --duration=5 --block_size=1M --operation=write
#
# --protocol, --metadata_server, --device_name, --buffer_size and --init_mem are given to the target
# too; more target flags can come in BENCH_TARGET_ARGS. The target advertises 127.0.0.1, writes its
# segment name to a file (--segment_file), and exits when this script does, however it ends (it
# reads a pipe this script holds: --exit_on_stdin_close). Exit code: the initiator's (0 ok,
# 1 failure such as a verify mismatch, 2 usage error).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
launcher="$root/bin/mooncake4j"

target_args=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  a=${args[$i]}
  case "$a" in
    --protocol=*|--metadata_server=*|--device_name=*|--buffer_size=*|--init_mem=*|--auto_discovery|--auto_discovery=*)
      target_args+=("$a") ;;
    --protocol|--metadata_server|--device_name|--buffer_size)
      if ((i + 1 < ${#args[@]})); then target_args+=("$a=${args[$((i + 1))]}"); fi ;;
    --mode|--mode=*|--segment_id|--segment_id=*)
      echo "bench-loopback: $a is set by this script; pass only initiator flags" >&2
      exit 2 ;;
  esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mooncake4j-loopback.XXXXXX")
target_pid=
cleanup() {
  exec 3>&- 2>/dev/null || true
  if [ -n "$target_pid" ] && kill -0 "$target_pid" 2>/dev/null; then
    kill "$target_pid" 2>/dev/null || true
    wait "$target_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The target's stdin is a FIFO whose only writer is this script (fd 3): when the script ends, even
# by SIGKILL, the target sees end of file and exits.
mkfifo "$tmp/stdin"
# shellcheck disable=SC2086
"$launcher" bench --mode=target --local_server_name=127.0.0.1 --segment_file="$tmp/segment" \
  --exit_on_stdin_close "${target_args[@]}" ${BENCH_TARGET_ARGS:-} \
  <"$tmp/stdin" >"$tmp/target.log" 2>&1 &
target_pid=$!
exec 3>"$tmp/stdin"

for _ in $(seq 1 600); do
  [ -s "$tmp/segment" ] && break
  if ! kill -0 "$target_pid" 2>/dev/null; then
    echo "bench-loopback: the target exited before it was ready:" >&2
    cat "$tmp/target.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ ! -s "$tmp/segment" ]; then
  echo "bench-loopback: the target was not ready after 60 s:" >&2
  cat "$tmp/target.log" >&2
  exit 1
fi
segment=$(cat "$tmp/segment")
echo "bench-loopback: target pid $target_pid, segment_id $segment" >&2

set +e
"$launcher" bench --mode=initiator --segment_id="$segment" "$@" 3>&-
rc=$?
set -e
exit $rc
