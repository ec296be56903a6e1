#!/usr/bin/env bash
# The engine's figures next to their physical baselines, measured in the same run on this host, each
# engine figure printed as a ratio to its baseline (see docs/benchmarks.md for what each means).
#
#   scripts/bench-baselines.sh [--duration=S] [--repeats=N] [--threads=N] [--batch=N] [--standard]
#                              [--quick] [--no-jni]
#
# Baselines:  iperf3 over loopback, one stream with 1 MiB writes (-l 1M), and -P <lanes> streams
#             (MC_TCP_LANES_PER_PEER, default 4: as many connections as the engine opens); iperf3
#             reuses one hot 1 MiB buffer, so the same single stream from a small C program that
#             sends from and receives into the bench's working set (threads x batch x 1 MiB) too;
#             memcpy bandwidth from a small C loop (compiled here with gcc) with the bench's access
#             pattern, and the same through JNI (NativeMemory.copy, via the JMH jar if it is built).
# Engine:     bench between two processes over tcp (a target in the background, as
#             scripts/bench-loopback.sh): READ and WRITE at 1 MiB and 64 KiB, 4 KiB in batches of 128
#             (requests/s), and same-process copies (--segment_id=self) at 1 MiB.
# Each figure runs --duration seconds (default 3) after a 1 s unreported warm-up, --repeats times
# (default 3), interleaved (baselines and engine alternate, so that noise from other work on the host
# hits both); medians are reported, and each ratio is the median of the per-repeat ratios (a figure
# against the baseline of its own repeat). --quick: 1 repeat of 1 s (a smoke run, not figures).
# The "CPU s/GB" column is CPU time of both ends per GB moved (iperf3's own report; the bench's
# initiator line plus the target's /proc time, scaled to the timed part): on a host whose cores both
# ends share, it predicts what a quiet host would give (cores / CPU s/GB) and is far less noisy
# than throughput when other work runs.
# --standard adds Mooncake's default invocation (12 threads x 128 x 64 KiB) next to the tuned one.
# Needs: iperf3 and gcc (scripts/install-deps.sh), the jars (./mvnw -q -DskipTests install).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
launcher="$root/bin/mooncake4j"

duration=3
repeats=3
threads=${BENCH_THREADS:-2}
batch=128
jni=1
standard=0
for a in "$@"; do
  case "$a" in
    --duration=*) duration=${a#*=} ;;
    --repeats=*) repeats=${a#*=} ;;
    --threads=*) threads=${a#*=} ;;
    --batch=*) batch=${a#*=} ;;
    --quick) duration=1; repeats=1 ;;
    --no-jni) jni=0 ;;
    --standard) standard=1 ;;
    -h|--help) sed -n '2,/^# Needs/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-baselines: unknown argument $a (see --help)" >&2; exit 2 ;;
  esac
done
lanes=${MC_TCP_LANES_PER_PEER:-4}
for tool in iperf3 gcc; do
  command -v "$tool" >/dev/null || { echo "bench-baselines: $tool is missing: run scripts/install-deps.sh" >&2; exit 2; }
done
"$launcher" bench --help >/dev/null || exit 2 # the launcher says how to build the jars

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mooncake4j-baselines.XXXXXX")
target_pid=
iperf_pid=
cleanup() {
  exec 3>&- 2>/dev/null || true
  for p in $target_pid $iperf_pid; do
    if kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gcc -O2 -pthread -o "$tmp/memcpy_bw" "$root/scripts/baselines/memcpy_bw.c"
gcc -O2 -o "$tmp/tcp_bw" "$root/scripts/baselines/tcp_bw.c"

# ---- the machine
echo "== $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname): $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
echo "== $(java -version 2>&1 | head -1); iperf3 $(iperf3 --version | head -1 | awk '{print $2}'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $duration s per figure after a 1 s warm-up, $repeats repeats, medians; engine: $threads threads x batch $batch, $lanes lanes per peer"

# ---- the bench target (one process for every engine figure)
mkfifo "$tmp/stdin"
"$launcher" bench --mode=target --protocol=tcp --local_server_name=127.0.0.1 --segment_file="$tmp/segment" \
  --exit_on_stdin_close --buffer_size=1G <"$tmp/stdin" >"$tmp/target.log" 2>&1 &
target_pid=$!
exec 3>"$tmp/stdin"
for _ in $(seq 1 600); do
  [ -s "$tmp/segment" ] && break
  kill -0 "$target_pid" 2>/dev/null || { echo "bench-baselines: the target exited:" >&2; cat "$tmp/target.log" >&2; exit 1; }
  sleep 0.1
done
segment=$(cat "$tmp/segment")

# ---- iperf3 server, for every iperf3 figure
iperf_port=$((5201 + RANDOM % 1000))
iperf3 -s -p "$iperf_port" >/dev/null 2>&1 &
iperf_pid=$!
sleep 0.5

# results: one file per figure, one value per line; fig.X for the figure, cpu.X for its CPU s/GB
record() { echo "$2" >>"$tmp/fig.$1"; [ -z "${3:-}" ] || echo "$3" >>"$tmp/cpu.$1"; }
tck=$(getconf CLK_TCK)
proc_cpu() { awk -v t="$tck" '{sub(/.*\) /, ""); printf "%.3f", ($12 + $13) / t}' "/proc/$1/stat"; }

iperf() { # figure streams -> records GB/s (receiver side) and CPU s/GB of both ends
  local out gb cores
  out=$(iperf3 -c 127.0.0.1 -p "$iperf_port" -l 1M -P "$2" -t "$duration" -O 1 -f m -V 2>&1)
  gb=$(echo "$out" | awk '/ receiver$/ {v=$(NF-2); u=$(NF-1)} END {if (u=="Gbits/sec") v*=1000; printf "%.2f", v/8000}')
  cores=$(echo "$out" | awk '/CPU Utilization/ {gsub(/%/, ""); for (i=1;i<=NF;i++) if ($i ~ /sender$|receiver$/) s += $(i+1)} END {printf "%.3f", s/100}')
  record "$1" "$gb" "$(awk -v c="$cores" -v g="$gb" 'BEGIN {if (g > 0) printf "%.3f", c/g}')"
}

bench() { # figure unit(gbps|reqs) extra-args -> records the figure and CPU s/GB of both ends
  local fig=$1 unit=$2 out t0 t1 v secs icpu gbs
  shift 2
  t0=$(proc_cpu "$target_pid")
  out=$("$launcher" bench --protocol=tcp --local_server_name=127.0.0.1 --duration="$duration" --warmup_duration=1 \
    --threads="${THREADS:-$threads}" --batch_size="$batch" --buffer_size="${BUF:-1G}" --progress=false "$@" 3>&- 2>&1) || {
    echo "bench-baselines: bench $* failed:" >&2; echo "$out" | tail -5 >&2; return 0; }
  t1=$(proc_cpu "$target_pid")
  if [ "$unit" = reqs ]; then v=$(echo "$out" | awk '/^Requests:/ {print $4}'); else v=$(echo "$out" | awk '/^Test completed/ {print $(NF-1)}'); fi
  secs=$(echo "$out" | awk '/^Test completed/ {gsub(/,/, "", $4); print $4}')
  gbs=$(echo "$out" | awk '/^Test completed/ {print $(NF-1)}')
  icpu=$(echo "$out" | awk '/^CPU:/ {print $4}')
  # the target served the 1 s warm-up too: count the timed part's share of its CPU
  record "$fig" "$v" "$(awk -v a="$t0" -v b="$t1" -v i="$icpu" -v s="$secs" -v g="$gbs" -v d="$duration" \
    'BEGIN {if (g > 0 && s > 0) printf "%.3f", (i + (b - a) * d / (d + 1)) / (g * s)}')"
}

jni_copy() { # block working-set -> GB/s through NativeMemory.copy (JMH, same threads as memcpy), or nothing
  local jar="$root/benchmarks/target/benchmarks.jar"
  [ "$jni" = 1 ] && [ -f "$jar" ] || return 0
  java --enable-native-access=ALL-UNNAMED -jar "$jar" 'CopyBandwidthBenchmark.jni$' -p block="$1" \
    -p region=$(($2 / threads)) -t "$threads" -f 1 -wi 1 -w 1 -i 1 -r "$duration" -foe true 2>/dev/null \
    | awk -v b="$1" '/CopyBandwidthBenchmark.jni/ && /thrpt/ {printf "%.2f", $5 * b / 1e9}'
}

mib=1048576
self_set=$((threads * batch * mib))
[ "$self_set" -gt $((1024 * mib)) ] && self_set=$((1024 * mib))
for r in $(seq 1 "$repeats"); do
  echo "-- repeat $r/$repeats (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  iperf iperf1 1
  iperf iperfN "$lanes"
  record ctcp "$("$tmp/tcp_bw" $mib "$self_set" "$duration" | awk '{print $(NF-1)}')"
  bench w1m gbps --segment_id="$segment" --operation=write --block_size=1M
  bench r1m gbps --segment_id="$segment" --operation=read --block_size=1M
  BUF=4M bench w1mhot gbps --segment_id="$segment" --operation=write --block_size=1M
  BUF=4M bench r1mhot gbps --segment_id="$segment" --operation=read --block_size=1M
  bench w64k gbps --segment_id="$segment" --operation=write --block_size=64K
  bench r64k gbps --segment_id="$segment" --operation=read --block_size=64K
  bench w4k reqs --segment_id="$segment" --operation=write --block_size=4K
  bench r4k reqs --segment_id="$segment" --operation=read --block_size=4K
  if [ "$standard" = 1 ]; then
    THREADS=12 bench wstd gbps --segment_id="$segment" --operation=write --block_size=64K
    THREADS=12 bench rstd gbps --segment_id="$segment" --operation=read --block_size=64K
  fi
  record memcpy "$("$tmp/memcpy_bw" $mib "$self_set" "$duration" "$threads" | awk '{print $(NF-1)}')"
  bench self gbps --segment_id=self --operation=write --block_size=1M
  j=$(jni_copy $mib "$self_set")
  [ -z "$j" ] || record jni "$j"
done

median() { # figure -> median of its values
  [ -f "$tmp/fig.$1" ] || { echo "n/a"; return; }
  sort -g "$tmp/fig.$1" | awk '{v[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'
}
values() { [ -f "$tmp/fig.$1" ] && paste -sd' ' "$tmp/fig.$1" || echo "-"; }
# the median of the ratios of each repeat's figure to the same repeat's baseline (the two ran
# seconds apart), which noise from other work on the host distorts far less than a ratio of medians
ratio() {
  if [ -f "$tmp/fig.$1" ] && [ -f "$tmp/fig.$2" ]; then
    paste "$tmp/fig.$1" "$tmp/fig.$2" | awk '$1 > 0 && $2 > 0 {print $1 / $2}' | sort -g \
      | awk '{v[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2fx", v[(NR+1)/2]; else printf "%.2fx", (v[NR/2]+v[NR/2+1])/2}'
  elif [ -f "$tmp/fig.$1" ]; then
    awk -v a="$(median "$1")" -v b="$2" 'BEGIN {if (a+0 > 0 && b+0 > 0) printf "%.2fx", a/b; else print "n/a"}'
  else
    echo "n/a"
  fi
}
line() { printf "%-42s %10s %-6s %-24s %-9s %s\n" "$@"; }
cpu() { [ -f "$tmp/cpu.$1" ] && sort -g "$tmp/cpu.$1" | awk '{v[NR]=$1} END {if (NR) printf "%.3f", v[int((NR+1)/2)]}' || echo "-"; }

i1=$(median iperf1); iN=$(median iperfN); mc=$(median memcpy)
w1=$(median w1m); r1=$(median r1m); w64=$(median w64k); r64=$(median r64k)
echo
line "figure" "median" "unit" "runs" "CPU s/GB" "ratio: median of per-repeat ratios (target)"
line "iperf3 -l 1M, 1 stream (baseline)" "$i1" "GB/s" "$(values iperf1)" "$(cpu iperf1)" ""
line "iperf3 -l 1M, -P $lanes (baseline)" "$iN" "GB/s" "$(values iperfN)" "$(cpu iperfN)" ""
line "C tcp 1 stream, bench's working set (base)" "$(median ctcp)" "GB/s" "$(values ctcp)" "" "$(ratio ctcp iperf1) of iperf3 x1"
line "memcpy C, 1 MiB blocks (baseline)" "$mc" "GB/s" "$(values memcpy)" "" ""
line "NativeMemory.copy (JNI), 1 MiB blocks" "$(median jni)" "GB/s" "$(values jni)" "" "$(ratio jni memcpy) of memcpy"
line "tcp WRITE 1 MiB" "$w1" "GB/s" "$(values w1m)" "$(cpu w1m)" "$(ratio w1m iperf1) of iperf3 x1 (>=0.9), $(ratio w1m iperfN) of -P $lanes, $(ratio w1m ctcp) of C tcp"
line "tcp READ 1 MiB" "$r1" "GB/s" "$(values r1m)" "$(cpu r1m)" "$(ratio r1m iperf1) of iperf3 x1 (>=0.9), $(ratio r1m iperfN) of -P $lanes, $(ratio r1m ctcp) of C tcp"
line "tcp WRITE 1 MiB, 4 MiB buffers (hot)" "$(median w1mhot)" "GB/s" "$(values w1mhot)" "$(cpu w1mhot)" "$(ratio w1mhot iperf1) of iperf3 x1, $(ratio w1mhot iperfN) of -P $lanes"
line "tcp READ 1 MiB, 4 MiB buffers (hot)" "$(median r1mhot)" "GB/s" "$(values r1mhot)" "$(cpu r1mhot)" "$(ratio r1mhot iperf1) of iperf3 x1, $(ratio r1mhot iperfN) of -P $lanes"
line "tcp WRITE 64 KiB" "$w64" "GB/s" "$(values w64k)" "$(cpu w64k)" "$(ratio w64k w1m) of WRITE 1 MiB (>=0.8)"
line "tcp READ 64 KiB" "$r64" "GB/s" "$(values r64k)" "$(cpu r64k)" "$(ratio r64k r1m) of READ 1 MiB (>=0.8)"
line "tcp WRITE 4 KiB x batch $batch" "$(median w4k)" "req/s" "$(values w4k)" "$(cpu w4k)" "$(ratio w4k 300000) of 300k"
line "tcp READ 4 KiB x batch $batch" "$(median r4k)" "req/s" "$(values r4k)" "$(cpu r4k)" "$(ratio r4k 300000) of 300k"
if [ "$standard" = 1 ]; then
  line "tcp WRITE 64 KiB, 12 threads (Mooncake's)" "$(median wstd)" "GB/s" "$(values wstd)" "$(cpu wstd)" "$(ratio wstd w64k) of the tuned"
  line "tcp READ 64 KiB, 12 threads (Mooncake's)" "$(median rstd)" "GB/s" "$(values rstd)" "$(cpu rstd)" "$(ratio rstd r64k) of the tuned"
fi
line "same process (self) WRITE 1 MiB" "$(median self)" "GB/s" "$(values self)" "" "$(ratio self memcpy) of memcpy (>=0.8)"
echo "== load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
