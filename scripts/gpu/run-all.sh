#!/usr/bin/env bash
# Every GPU figure of docs/gpu.md from one GPU-machine call: the comparison
# model and PyTorch's baseline (eager and torch.compile), the engine's
# correctness and speed table beside it, the package's GPU tests, and the
# end-to-end serve + bench runs. Full logs go to OUT; a summary to stdout.
# Usage: [SKIP_E2E=1] scripts/gpu/run-all.sh BIN_DIR OUT [DURATION]
#   BIN_DIR holds cuda.test, cudabench and m3ectl built on a Go machine
#   (docs/gpu.md says how), or bin.txz with the three inside.
set -uo pipefail
bin=$(realpath "$1") out=$2 dur=${3:-10s}
work=/tmp/gpuwork
if [ -f "$bin/bin.txz" ]; then
  mkdir -p /tmp/m3ectl-bin && tar xJf "$bin/bin.txz" -C /tmp/m3ectl-bin && bin=/tmp/m3ectl-bin
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader
python3 scripts/gpu/make_model_and_baseline.py --work "$work" --out "$out" >"$out/baseline.txt" 2>&1 || { tail -20 "$out/baseline.txt"; exit 1; }
"$bin/cudabench" -work "$work" -out "$out" >"$out/cudabench.txt" 2>&1
echo "cudabench exit $?"
sed -n '/== correctness/,/^$/p' "$out/cudabench.txt"
awk '/== speed: m3ectl cuda fp16 vs/,/GPU memory/' "$out/cudabench.txt"
grep -A9 "time split, long64x128" "$out/cudabench.txt"
(cd pkg/engine/cuda && "$bin/cuda.test" -test.v) >"$out/cuda-test.txt" 2>&1
echo "cuda.test exit $?: $(grep -c -- '--- PASS' "$out/cuda-test.txt") passed, $(grep -c -- '--- FAIL' "$out/cuda-test.txt") failed, $(grep -c -- '--- SKIP' "$out/cuda-test.txt") skipped"
[ -n "${SKIP_E2E:-}" ] && exit 0
scripts/gpu/e2e.sh "$bin/m3ectl" "$work/m3e-base-rand" "$out" "$dur" >"$out/e2e.txt" 2>&1
echo "e2e exit $?"
grep "GPU memory" "$out/e2e.txt"
for f in "$out"/bench-*.txt; do echo "== $(basename "$f")"; tail -9 "$f"; done
