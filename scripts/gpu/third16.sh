#!/usr/bin/env bash
# Issue 16's third round in one GPU-machine call (docs/gpu.md, "Third
# round"): the bulk job of the 24 x 1024 model, old build against new in
# the same call (whole job, process start to file closed), its profile
# (cudabench -bulk: the job without cold start and file, every batch's graph
# replay, stage split; Nsight Compute per kernel), sentence-transformers'
# encode in the same call, the GPU tests and the fp16 parity table, and the
# small-batch device times (cudabench -small) of the serving path.
# Usage: [SECTIONS="tests job st check prof ncu split small regs"] scripts/gpu/third16.sh BIN_DIR OUT CORPUS.xz
#   BIN_DIR: NAME.xz for m3ectl, m3ectl-old (the build before), cudabench,
#   cuda.test. RUNS: whole-job runs per binary (default 3). JOBS: lines
#   "label binary [flags...]" replacing the default job list; ENV_label=...
#   gives a label's environment. NO_LARGE=1 skips making the 24 x 1024 model.
set -uo pipefail
bin=$(realpath "$1") out=$(realpath "$2") corpus=$3
here=$(dirname "$(realpath "$0")")
sections=${SECTIONS:-"tests job st check prof ncu small"}
work=/tmp/gpuwork b=/tmp/b o=/tmp/third
mkdir -p "$b" "$o" "$out"
for f in "$bin"/*.xz; do x=$(basename "$f" .xz); xz -dc "$f" >"$b/$x" && chmod +x "$b/$x"; done
export XDG_CACHE_HOME=/tmp/m3cache
T0=$(date +%s)
step() { echo "== +$(($(date +%s) - T0))s $*"; }
has() { [[ " $sections " == *" $1 "* ]]; }
ns() { date +%s%N; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$o/gpu.txt"
echo "cores: $(nproc)  date: $(date -u +%FT%TZ)" | tee -a "$o/gpu.txt"
xz -dc "$corpus" >/tmp/corpus.txt
head -2000 /tmp/corpus.txt >/tmp/head2000.txt
step models
python3 scripts/gpu/make_model_and_baseline.py --work "$work" --out "$o" --no-bench >"$o/make.log" 2>&1 || { tail "$o/make.log"; exit 1; }
[ -n "${NO_LARGE:-}" ] || python3 "$here/bulk_baseline.py" --work "$work" --out "$o" --corpus /tmp/corpus.txt --make-only 2>&1 | grep -v -i warn
large=$work/m3e-large-rand base=$work/m3e-base-rand

if has tests; then
  step "GPU tests, parity"
  # TEST_ENVS: lines of environment settings, one cuda.test and parity run each.
  i=0
  while read -r envs; do
    [ -z "$envs" ] && continue
    i=$((i + 1))
    echo "-- $envs"
    (cd pkg/engine/cuda && env $envs timeout 120 "$b/cuda.test" -test.v) >"$o/cuda-test$i.txt" 2>&1
    echo "cuda.test exit $?: $(grep -c -- '--- PASS' "$o/cuda-test$i.txt") passed, $(grep -c -- '--- FAIL' "$o/cuda-test$i.txt") failed, $(grep -c -- '--- SKIP' "$o/cuda-test$i.txt") skipped"
    grep -B2 -A8 -- '--- FAIL' "$o/cuda-test$i.txt" | head -30
    env $envs timeout 120 "$b/cudabench" -accuracy -work "$work" >"$o/accuracy$i.txt" 2>&1; echo "cudabench -accuracy exit $?"
    sed -n '/== correctness/,$p' "$o/accuracy$i.txt"
  done <<<"${TEST_ENVS:-X=0}"
fi

if has job; then
  step "whole job: embed --output .npy, old and new builds alternating"
  jobs=${JOBS:-"old m3ectl-old
new m3ectl
old-base m3ectl-old --model-base
new-base m3ectl --model-base"}
  while read -r label bn flags; do
    [ -z "$label" ] && continue
    m=$large; [[ "$flags" == *--model-base* ]] && m=$base && flags=${flags//--model-base/}
    envv=ENV_${label//-/_}
    env ${!envv:-} "$b/$bn" embed --engine cuda --model "$m" --input /tmp/corpus.txt -o /tmp/warm.npy --quiet $flags 2>"$o/job-$label-warm.log" || tail -3 "$o/job-$label-warm.log"
  done <<<"$jobs"
  for i in $(seq 1 "${RUNS:-3}"); do
    while read -r label bn flags; do
      [ -z "$label" ] && continue
      m=$large; [[ "$flags" == *--model-base* ]] && m=$base && flags=${flags//--model-base/}
      envv=ENV_${label//-/_}
      # A fresh output file: replacing the last run's 410 MB file made the
      # rename free its pages inside the job (~0.18 s on the lent H200).
      rm -f "/tmp/$label.npy"; sync
      s=$(ns); env ${!envv:-} "$b/$bn" embed -v --engine cuda --model "$m" --input /tmp/corpus.txt -o /tmp/$label.npy $flags 2>"$o/job-$label-$i.log"; rc=$?; e=$(ns)
      echo "job $label run $i: exit $rc, $(python3 "$here/joblog.py" "$s" "$e" "$o/job-$label-$i.log")"
    done <<<"$jobs"
  done
  grep -h "cuda engine ready" "$o"/job-new-1.log "$o"/job-old-1.log 2>/dev/null | sed 's/^time=[^ ]* level=DEBUG //' | cut -c1-520
  grep -h "cuda libraries loaded" "$o"/job-new-*.log | sed 's/^time=[^ ]* level=DEBUG //'
  grep -h "shape first seen" "$o"/job-new-1.log | head -3 | sed 's/^time=[^ ]* level=DEBUG //'
fi

if has st; then
  step "sentence-transformers fp16, encode(batch_size=256), model loaded"
  PYTHONUNBUFFERED=1 timeout 200 python3 "$here/bulk_baseline.py" --work "$work" --out "$o" --corpus /tmp/corpus.txt --models "${ST_MODELS:-m3e-large-rand}" 2>&1 | grep -v -i "warn\|Loading weights"
fi

if has check; then
  step "bulk .npy against embed's JSON (first 2000 texts) and sentence-transformers"
  "$b/m3ectl" embed --engine cuda --model "$large" </tmp/head2000.txt >/tmp/large-head.jsonl 2>/dev/null
  [ -f "$o/st-m3e-large-rand-head.npy" ] && python3 "$here/bulk_baseline.py" --work "$work" --out "$o" --corpus /tmp/head2000.txt --check m3e-large-rand /tmp/new.npy /tmp/large-head.jsonl m3e-large-rand /tmp/old.npy /tmp/large-head.jsonl 2>&1 | grep -v -i warn
  python3 - /tmp/old.npy /tmp/new.npy <<'PY'
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print(f"old build's .npy against the new one's, all {len(a)} rows: max |diff| {np.abs(a - b).max():.2e}, min cosine {cos.min():.7f}")
PY
fi

if has prof; then
  step "cudabench -bulk (24 x 1024): the job's GPU side"
  # PROF_VARIANTS: lines "ENV ARGS..." (ENV X=0 for none); each runs with its
  # own GEMM-choice cache, filled by cudabench's untimed first run.
  i=0
  while read -r envs args; do
    [ -z "$envs" ] && continue
    i=$((i + 1))
    echo "-- $envs $args"
    env XDG_CACHE_HOME=/tmp/cp$i $envs timeout 150 "$b/cudabench" -bulk "$large" -bulk-corpus /tmp/corpus.txt $args >"$o/prof$i.txt" 2>&1
    echo "exit $?"; grep -v "^GPU" "$o/prof$i.txt" | cut -c1-900
  done <<<"${PROF_VARIANTS:-X=0}"
fi

if has ncu; then
  step "Nsight Compute: kernels of the median and the longest bulk batch (eager)"
  timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base -c "${NCU_COUNT:-900}" \
    "$b/cudabench" -bulk "$large" -bulk-corpus /tmp/corpus.txt -bulk-ncu >"$o/ncu.csv" 2>"$o/ncu.err"
  echo "ncu exit $?, $(wc -l <"$o/ncu.csv") lines"; grep -v "^==PROF==" "$o/ncu.err" | tail -3
  python3 "$here/ncu_summary.py" "$o/ncu.csv" | tee "$o/ncu-summary.txt"
fi

if has split; then
  step "cudabench -bulk-split-only (24 x 1024): three of the job's batches, graph time and stage split"
  # SPLIT_VARIANTS: lines of environment settings (X=0 for none).
  while read -r envs; do
    [ -z "$envs" ] && continue
    echo "-- $envs"
    env $envs timeout 90 "$b/cudabench" -bulk "$large" -bulk-corpus /tmp/corpus.txt -bulk-split-only 2>&1 | grep -v "^GPU" | cut -c1-700
  done <<<"${SPLIT_VARIANTS:-X=0}"
fi

if has small; then
  step "cudabench -small (m3e-base-shaped, serving batches)"
  # SMALL_VARIANTS: lines of environment settings (X=0 for none).
  i=0
  while read -r envs; do
    [ -z "$envs" ] && continue
    i=$((i + 1))
    echo "-- $envs"
    env $envs timeout 120 "$b/cudabench" -small -small-sizes "${SMALL_SIZES:-1,16,32,64,128}" -work "$work" >"$o/small$i.txt" 2>&1
    grep -E "^ +[0-9]+ |back-to-back" "$o/small$i.txt" | cut -c1-200
  done <<<"${SMALL_VARIANTS:-X=0}"
fi

if has regs; then
  step "kernel resources (ptxas -v), fresh NVRTC cache"
  for m in "$base" "$large"; do
    XDG_CACHE_HOME=/tmp/regs M3ECTL_NVRTC_VERBOSE=1 "$b/m3ectl" embed --engine cuda --model "$m" "m3e" 2>&1 >/dev/null | grep -A2 -i "attn_mma\|add_ln" | grep -i "registers\|spill\|stack\|Compiling" | head -8
    rm -rf /tmp/regs
  done
fi
step pack
tar czf "$out/third.tgz" -C "$o" --exclude='*.npy' .
ls -la "$out"
