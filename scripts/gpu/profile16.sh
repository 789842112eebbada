#!/usr/bin/env bash
# Issue 16's profile in one GPU-machine call: the engine's small-batch
# timings (cudabench -small: wall, graph and eager device time, stage
# split), Nsight Compute's per-kernel durations for batches of 1, 32 and 128
# short sentences, and Go CPU profiles of the server under bench at c=128
# and c=32 (issue16.sh's serve runs with PROFILE=1).
# Usage: scripts/gpu/profile16.sh BIN_DIR OUT   (BIN_DIR: m3ectl.xz, cudabench.xz)
set -uo pipefail
bin=$(realpath "$1") out=$(realpath "$2")
work=/tmp/gpuwork o=/tmp/prof
mkdir -p /tmp/b "$o" "$out"
for x in m3ectl cudabench; do xz -dc "$bin/$x.xz" >/tmp/b/$x && chmod +x /tmp/b/$x; done
export XDG_CACHE_HOME=/tmp/m3cache
T0=$(date +%s)
step() { echo "== +$(($(date +%s) - T0))s $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
step model
python3 scripts/gpu/make_model_and_baseline.py --work "$work" --out "$o" --no-bench >"$o/make.log" 2>&1 || { tail "$o/make.log"; exit 1; }
step "cudabench -small"
/tmp/b/cudabench -small -work "$work" 2>&1 | tee "$o/small.txt"
step "ncu, batches 1/32/128 eager"
timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
  /tmp/b/cudabench -ncu-small -work "$work" >"$o/ncu.csv" 2>"$o/ncu.err"
echo "ncu exit $?, $(wc -l <"$o/ncu.csv") lines"; tail -3 "$o/ncu.err"
step "serve profiles"
echo x >/tmp/corpus.txt
RUNS="${RUNS:-mb128-cont-1inst mb128-cont mb32-cont-1inst mb32-triton}" PROFILE=1 SECTIONS=serve \
  scripts/gpu/issue16.sh /tmp/b "$o" /tmp/corpus.txt 5s 2>&1 | grep -v "^== +0s models"
step pack
tar czf "$out/prof.tgz" -C "$o" .
ls -la "$out"
