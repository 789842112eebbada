#!/usr/bin/env bash
# Issue 16's kernel-setting experiments in one GPU-machine call:
# cudabench -small under each VARIANT (environment settings, each with its
# own GEMM-choice cache), then issue16.sh serve runs with RUNS (and the
# variants' settings through SERVE_ENV). Results in OUT/prof.tgz.
# Usage: scripts/gpu/explore16.sh BIN_DIR OUT
set -uo pipefail
bin=$(realpath "$1") out=$(realpath "$2")
work=/tmp/gpuwork o=/tmp/prof
mkdir -p /tmp/b "$o" "$out"
for f in "$bin"/*.xz; do x=$(basename "$f" .xz); xz -dc "$f" >/tmp/b/$x && chmod +x /tmp/b/$x; done
T0=$(date +%s)
step() { echo "== +$(($(date +%s) - T0))s $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
python3 scripts/gpu/make_model_and_baseline.py --work "$work" --out "$o" --no-bench >"$o/make.log" 2>&1 || { tail "$o/make.log"; exit 1; }
i=0
while read -r cache envs; do
  [ -z "$cache" ] && continue
  i=$((i + 1))
  step "variant $i: cache $cache, $envs"
  env XDG_CACHE_HOME=/tmp/c-$cache $envs /tmp/b/cudabench -small -small-sizes "${SIZES:-1,8,16,32,64,128}" -work "$work" >"$o/small-$i.txt" 2>&1
  grep -E "^ +[0-9]+ |back-to-back" "$o/small-$i.txt" | cut -c1-60
done <<<"${VARIANTS:-a M3ECTL_X=0}"
step serve
echo x >/tmp/corpus.txt
PROFILE= SECTIONS=serve scripts/gpu/issue16.sh /tmp/b "$o" /tmp/corpus.txt "${DUR:-4s}" 2>&1 | grep -v "^== +0s models"
step pack
tar czf "$out/prof.tgz" -C "$o" .
