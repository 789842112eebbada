#!/usr/bin/env bash
# serve-cost.sh: the server's own CPU cost per request, on this machine, with
# the engine taken out (issue 16 item 1).
#
# `m3ectl serve --engine null` (an engine that computes nothing and answers
# 768-wide unit vectors, see pkg/engine/null) on a model folder of
# m3e-base's shape, pinned to one core; `m3ectl bench` pinned to another.
# Reported per run: infer/s and the server's utime+stime over the window
# divided by the requests answered (the method of scripts/gpu/issue16.sh).
#
#   scripts/cpu/serve-cost.sh BINARY [BINARY...]
#
# A BINARY given as VAR=VALUE[,VAR=VALUE...]@BINARY runs its server with
# those environment variables (its label gets them appended), so that one
# interleaved series compares settings, e.g. GOMAXPROCS=6@m3ectl against
# m3ectl. With two or more BINARYs, the summary also gives each one's
# median ratio to the first within a round (back-to-back runs), which
# cancels most of a shared machine's drift between rounds.
#
# Environment: RUNS (5) runs of each binary, interleaved so that both see
# the same machine; C (128) concurrency; MBS (128) max_batch_size; DUR (5s)
# window; EXTRA bench flags (e.g. --binary-output, --protocol kserve-grpc
# with URL=127.0.0.1:8001); SERVER_CPU (0) and CLIENT_CPU (1) cores;
# PPROF=ADDR passes --pprof-addr to the server and saves a 4 s CPU profile
# of each run next to the summary; CLIENT=BINARY runs that binary's bench
# against every server (default: each binary's own), so that servers are
# compared under the same client; OUT (/tmp/serve-cost) results.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,26p "$0"; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${RUNS:-5} C=${C:-128} MBS=${MBS:-128} DUR=${DUR:-5s} EXTRA=${EXTRA:-}
SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1} OUT=${OUT:-/tmp/serve-cost}
URL=${URL:-http://127.0.0.1:18000}
mkdir -p "$OUT"

# The model folder (m3e-base's shape, no weights): null-repo.sh.
repo="$OUT/repo"
. "$here/scripts/cpu/null-repo.sh"
null_repo "$repo" "$MBS"

hz=$(getconf CLK_TCK)
one() { # binary label run [server environment, comma-separated]
  local bin=$1 label=$2 run=$3 senv=${4:-} pflag=""
  [ -n "${PPROF:-}" ] && pflag="--pprof-addr $PPROF"
  # shellcheck disable=SC2046 # the environment words split on purpose
  env $(tr , ' ' <<<"$senv") taskset -c "$SERVER_CPU" "$bin" serve --model-repository "$repo" --engine null --http-port 18000 --grpc-port 18001 --metrics-port -1 $pflag >"$OUT/serve-$label-$run.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 200); do curl -sf -o /dev/null localhost:18000/v2/health/ready && break; sleep 0.05; done
  local cl=${CLIENT:-$bin}
  taskset -c "$CLIENT_CPU" "$cl" bench --url "$URL" --model m3e-base -c "$C" --duration 2s --warmup 1s --no-server-stats $EXTRA >/dev/null 2>&1
  local t0 t1 prof=""
  if [ -n "${PPROF:-}" ]; then
    curl -s -o "$OUT/cpu-$label-$run.pprof" "http://$PPROF/debug/pprof/profile?seconds=4" &
    prof=$!
  fi
  t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  taskset -c "$CLIENT_CPU" "$cl" bench --url "$URL" --model m3e-base -c "$C" --duration "$DUR" --warmup 0s --no-server-stats $EXTRA --json "$OUT/bench-$label-$run.json" >/dev/null 2>&1
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  [ -n "$prof" ] && wait "$prof"
  kill -INT $pid; wait $pid 2>/dev/null || true
  python3 - "$OUT/bench-$label-$run.json" "$label" "$run" $((t1 - t0)) "$hz" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); l = r["levels"][0]
cpu = int(sys.argv[4]) / int(sys.argv[5])
print(sys.argv[2], sys.argv[3], f'{l["throughput"]:.0f}', f'{l["latency_ms"]["p50"]:.2f}', f'{cpu / max(l["requests"], 1) * 1e6:.1f}', f'{cpu / l["duration_s"]:.2f}', l.get("errors", 0))
PY
}

echo "label run infer/s p50_ms server_cpu_us_per_req server_cores_busy errors" | tee "$OUT/summary.txt"
for run in $(seq 1 "$RUNS"); do
  for arg in "$@"; do
    bin=${arg#*@} senv="" label=$(basename "${arg#*@}")
    if [ "$bin" != "$arg" ]; then
      senv=${arg%%@*} label="$label+$(tr , + <<<"$senv")"
    fi
    one "$bin" "$label" "$run" "$senv" | tee -a "$OUT/summary.txt"
  done
done
python3 - "$OUT/summary.txt" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]).read().split("\n")[1:]:
    f = line.split()
    if len(f) >= 5:
        rows[f[0]].append((float(f[2]), float(f[4])))
for label, v in rows.items():
    print(f"{label}: median {statistics.median(x[1] for x in v):.1f} us/request (runs: {' '.join(f'{x[1]:.1f}' for x in v)}), median {statistics.median(x[0] for x in v):.0f} infer/s")
# Runs of one round ran back to back: the ratio within a round cancels
# most of a shared machine's drift from round to round.
labels = list(rows)
for label in labels[1:]:
    r = [b[1] / a[1] for a, b in zip(rows[labels[0]], rows[label])]
    if r:
        print(f"{label} / {labels[0]}: median ratio {statistics.median(r):.3f} of us/request, by round (runs: {' '.join(f'{x:.2f}' for x in r)})")
PY

# With PPROF: where each run's server CPU went, in µs per request (the
# profile's 4 s window at the run's throughput; cumulative times, so the
# columns overlap: the syscalls are inside net/http's read and write).
if [ -n "${PPROF:-}" ] && command -v go >/dev/null; then
  echo "where the server CPU went, us/request (cumulative): total floats write-syscalls read-syscalls readRequest response.Write scheduler malloc"
  for arg in "$@"; do
    bin=${arg#*@} label=$(basename "${arg#*@}")
    [ "$bin" != "$arg" ] && label="$label+$(tr , + <<<"${arg%%@*}")"
    for run in $(seq 1 "$RUNS"); do
      f="$OUT/cpu-$label-$run.pprof"
      [ -s "$f" ] || continue
      tp=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['levels'][0]['throughput'])" "$OUT/bench-$label-$run.json")
      go tool pprof -top -cum -nodecount=5000 "$bin" "$f" 2>/dev/null | awk -v tp="$tp" -v n="$label-$run" '
        function sec(x) { if (x ~ /ms$/) { sub("ms", "", x); return x / 1000 } sub("s", "", x); return x + 0 }
        /Total samples/ { tot = sec($6) }
        $6 == "github.com/m3ectl/m3ectl/pkg/floatfmt.AppendFloat32s" { fl = sec($4) }
        $6 == "syscall.write" { wr = sec($4) }
        $6 == "syscall.read" { rd = sec($4) }
        $6 == "net/http.(*conn).readRequest" { rr = sec($4) }
        $6 == "net/http.(*response).Write" { rw = sec($4) }
        $6 == "github.com/m3ectl/m3ectl/pkg/serve/scheduler.(*Scheduler).Infer" { sc = sec($4) }
        $6 == "runtime.mallocgc" { ma = sec($4) }
        END { r = tp * 4 / 1e6; if (r > 0) printf "%s %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f\n", n, tot / r, fl / r, wr / r, rd / r, rr / r, rw / r, sc / r, ma / r }'
    done
  done
fi
