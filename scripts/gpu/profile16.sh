#!/usr/bin/env bash
# Issue 16's profile and comparison runs in one GPU-machine call: the
# engine's small-batch timings (cudabench -small: wall, graph and eager
# device time, stage split, back-to-back replays), Nsight Compute's
# per-kernel durations for batches of 1, 32 and 128 short sentences, and
# issue16.sh's sections (serve by default, with a Go CPU profile of each
# m3ectl server under bench: PROFILE=1). Everything lands in OUT/prof.tgz.
# Usage: [SMALL=0] [NCU=0] [SECTIONS="tests serve"] [RUNS="label ..."] [PROFILE=]
#        scripts/gpu/profile16.sh BIN_DIR OUT [CORPUS] [DURATION]
#   BIN_DIR: NAME.xz for m3ectl, cudabench, cuda.test, m3ectl-old, ...
set -uo pipefail
bin=$(realpath "$1") out=$(realpath "$2") corpus=${3:-} dur=${4:-5s}
work=/tmp/gpuwork o=/tmp/prof
mkdir -p /tmp/b "$o" "$out"
for f in "$bin"/*.xz; do x=$(basename "$f" .xz); xz -dc "$f" >/tmp/b/$x && chmod +x /tmp/b/$x; done
export XDG_CACHE_HOME=/tmp/m3cache
T0=$(date +%s)
step() { echo "== +$(($(date +%s) - T0))s $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
step model
python3 scripts/gpu/make_model_and_baseline.py --work "$work" --out "$o" --no-bench >"$o/make.log" 2>&1 || { tail "$o/make.log"; exit 1; }
if [ "${SMALL:-1}" = 1 ]; then
  step "cudabench -small"
  /tmp/b/cudabench -small -work "$work" 2>&1 | tee "$o/small.txt"
fi
if [ "${NCU:-1}" = 1 ]; then
  step "ncu, batches 1/32/128 eager"
  timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
    /tmp/b/cudabench -ncu-small -work "$work" >"$o/ncu.csv" 2>"$o/ncu.err"
  echo "ncu exit $?, $(wc -l <"$o/ncu.csv") lines"; tail -3 "$o/ncu.err"
fi
step "issue16.sh ${SECTIONS:-serve}"
[ -n "$corpus" ] || { echo x >/tmp/corpus.txt; corpus=/tmp/corpus.txt; }
RUNS="${RUNS:-}" PROFILE="${PROFILE-1}" SECTIONS="${SECTIONS:-serve}" \
  scripts/gpu/issue16.sh /tmp/b "$o" "$corpus" "$dur" 2>&1 | grep -v "^== +0s models"
step pack
tar czf "$out/prof.tgz" -C "$o" --exclude='*.npy' --exclude='*.jsonl' --exclude='*.parquet' .
ls -la "$out"
