#!/usr/bin/env bash
# Issue 16's final figures in one GPU-machine call: the small-batch device
# times (cudabench -small), serve + bench (the build before issue 16 beside
# this one; policies, instances, overlapped batches, gRPC and binary
# output), the GPU tests, then bulk (sentence-transformers in the same
# call) and cold starts under a time limit. Everything lands in OUT/final.tgz.
# Usage: scripts/gpu/final16.sh BIN_DIR OUT CORPUS   (BIN_DIR: NAME.xz for
#        m3ectl, m3ectl-old, cudabench, cuda.test)
set -uo pipefail
bin=$(realpath "$1") out=$(realpath "$2") corpus=$(realpath "$3")
o=/tmp/final
mkdir -p "$o" "$out"
T0=$(date +%s)
step() { echo "== +$(($(date +%s) - T0))s $*"; }
SMALL=1 NCU=0 PROFILE= SECTIONS="serve tests" RUNS="${RUNS:-before-mb32 before-mb128 mb32-triton mb32-triton-pipe mb32-cont mb32-cont-1inst mb32-cont-1inst-pipe mb128-triton mb128-cont mb128-cont-1inst mb128-cont-1inst-pipe mb32-triton-block mb32-cont-1inst-block mb128-cont-1inst-block mb128-cont-grpc mb128-cont-binary mb128-cont-1inst-grpc mb128-cont-1inst-binary}" \
  scripts/gpu/profile16.sh "$bin" "$o/serve" "" "${DUR:-5s}"
i=0
for v in ${SMALL_VARIANTS:-M3ECTL_CUDA_SYNC=block M3ECTL_GEMM_TUNE_HOLD_MB=0 M3ECTL_GEMM_ALGOS=64}; do
  i=$((i + 1))
  step "cudabench -small, $v (own GEMM-choice cache)"
  env XDG_CACHE_HOME=/tmp/cv$i "$v" /tmp/b/cudabench -small -small-sizes 1,16,32,64,128 -work /tmp/gpuwork >"$o/small-$v.txt" 2>&1
  grep -E "^ +[0-9]+ |back-to-back" "$o/small-$v.txt" | cut -c1-60
done
step "bulk and cold (limit ${BULK_LIMIT:-240}s)"
SECTIONS="bulk cold" timeout "${BULK_LIMIT:-240}" scripts/gpu/issue16.sh /tmp/b "$o/bulk" "$corpus" 2>&1 | grep -v "^== +0s models"
step pack
tar czf "$out/final.tgz" -C "$o" --exclude='*.npy' --exclude='*.jsonl' --exclude='*.parquet' .
