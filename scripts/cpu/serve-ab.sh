#!/usr/bin/env bash
# serve-ab.sh: two servers' CPU per request, compared in closely
# interleaved windows (issue 16 item 1) — for a box shared with other work,
# where serve-cost.sh's restart per run leaves minutes between the runs it
# compares and the machine's drift swamps a few percent.
#
#   scripts/cpu/serve-ab.sh A_BINARY B_BINARY
#
# Both servers (`serve --engine null`, the model folder serve-cost.sh
# builds) run for the whole series, pinned to the same core (SERVER_CPU);
# the bench client (CLIENT, default A_BINARY) on CLIENT_CPU sends to A for
# one window, then to B, PAIRS times; the server idle meanwhile costs
# nothing to speak of. Each window gives the server's utime+stime over it
# divided by the requests answered; the summary is the median and the
# spread of B/A over the pairs (each pair a few seconds apart).
# A binary given as VAR=VALUE[,VAR=VALUE...]@BINARY gets that environment.
#
# Environment: PAIRS (15), WIN (2s) window, C (128), MBS (128), EXTRA
# bench flags (e.g. --binary-output; with --protocol kserve-grpc the bench
# goes to the gRPC port), SERVER_CPU (0), CLIENT_CPU (1), OUT (/tmp/serve-ab).
set -euo pipefail
[ $# -eq 2 ] || { sed -n 2,22p "$0"; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
PAIRS=${PAIRS:-15} WIN=${WIN:-2s} C=${C:-128} MBS=${MBS:-128} EXTRA=${EXTRA:-}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1} OUT=${OUT:-/tmp/serve-ab}
mkdir -p "$OUT"

# The model folder (m3e-base's shape, no weights): null-repo.sh.
repo="$OUT/repo"
. "$here/scripts/cpu/null-repo.sh"
null_repo "$repo" "$MBS"

pids=()
trap 'for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done' EXIT
start() { # arg port label → pid
  local arg=$1 port=$2 bin=${1#*@} senv=""
  [ "$bin" != "$arg" ] && senv=${arg%%@*}
  # shellcheck disable=SC2046 # the environment words split on purpose
  env $(tr , ' ' <<<"$senv") taskset -c "$SERVER_CPU" "$bin" serve --model-repository "$repo" --engine null \
    --http-port "$port" --grpc-port $((port + 1)) --metrics-port -1 >"$OUT/serve-$3.log" 2>&1 &
  echo $!
}
pa=$(start "$1" 18200 A) && pids+=("$pa")
pb=$(start "$2" 18300 B) && pids+=("$pb")
for port in 18200 18300; do
  for _ in $(seq 1 200); do curl -sf -o /dev/null "localhost:$port/v2/health/ready" && break; sleep 0.05; done
done
client=${CLIENT:-${1#*@}}
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
window() { # pid port label pair
  local t0 t1 url="http://127.0.0.1:$2"
  [[ $EXTRA == *kserve-grpc* ]] && url="127.0.0.1:$(($2 + 1))"
  t0=$(cpu "$1")
  taskset -c "$CLIENT_CPU" "$client" bench --url "$url" --model m3e-base -c "$C" --duration "$WIN" \
    --warmup 0s --no-server-stats $EXTRA --json "$OUT/bench-$3-$4.json" >/dev/null 2>&1
  t1=$(cpu "$1")
  echo "$3 $4 $((t1 - t0)) $(python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["levels"][0]; print(l["requests"], l["throughput"], l.get("errors", 0))' "$OUT/bench-$3-$4.json")"
}
hz=$(getconf CLK_TCK)
# Warm both (connections, heaps, caches) before the series.
window "$pa" 18200 A 0 >/dev/null && window "$pb" 18300 B 0 >/dev/null
echo "pair A_us/req B_us/req B/A A_infer/s B_infer/s" | tee "$OUT/summary.txt"
for i in $(seq 1 "$PAIRS"); do
  # Alternate which goes first, so that a drift within a pair cancels too.
  if [ $((i % 2)) -eq 1 ]; then ra=$(window "$pa" 18200 A "$i"); rb=$(window "$pb" 18300 B "$i")
  else rb=$(window "$pb" 18300 B "$i"); ra=$(window "$pa" 18200 A "$i"); fi
  python3 - "$i" "$hz" $ra $rb <<'PY' | tee -a "$OUT/summary.txt"
import sys
i, hz = sys.argv[1], int(sys.argv[2])
a, b = sys.argv[3:9], sys.argv[9:15]
ua = int(a[2]) / hz / max(int(a[3]), 1) * 1e6
ub = int(b[2]) / hz / max(int(b[3]), 1) * 1e6
print(i, f"{ua:.1f}", f"{ub:.1f}", f"{ub / ua:.3f}", f"{float(a[4]):.0f}", f"{float(b[4]):.0f}")
PY
done
python3 - "$OUT/summary.txt" "$1" "$2" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]).read().split("\n")[1:] if l.strip()]
a = [float(r[1]) for r in rows]; b = [float(r[2]) for r in rows]; q = sorted(float(r[3]) for r in rows)
n = len(q)
print(f"A = {sys.argv[2]}: median {statistics.median(a):.1f} us/request; B = {sys.argv[3]}: median {statistics.median(b):.1f} us/request")
print(f"B/A by pair: median {statistics.median(q):.3f}, middle half {q[n // 4]:.3f}-{q[(3 * n) // 4]:.3f}, range {q[0]:.3f}-{q[-1]:.3f} ({n} pairs)")
PY
