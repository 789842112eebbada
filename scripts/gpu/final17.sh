#!/usr/bin/env bash
# Issue 16's third-round serving figures in one GPU-machine call: the
# small-batch device times (cudabench -small), serve + bench with the
# server's CPU per request (the build before issue 16, m3ectl-old = 93a29da,
# and the build this round started from, m3ectl-prev = 2183576, beside this
# one), the GPU tests, then cold starts. Bulk has its own call
# (third16.sh: sentence-transformers must share the call with it).
# Everything lands in OUT/final17.tgz.
# Usage: [SECTIONS="small serve tests cold"] [RUNS="label ..."] [DUR=4s]
#        scripts/gpu/final17.sh BIN_DIR OUT
#   BIN_DIR: NAME.xz for m3ectl, m3ectl-old, m3ectl-prev, cudabench, cuda.test.
set -uo pipefail
[ $# -eq 2 ] || { sed -n 2,10p "$0"; exit 2; }
bin=$(realpath "$1") out=$(realpath "$2")
o=/tmp/final17 work=/tmp/gpuwork
sections=${SECTIONS:-"small serve tests cold"}
mkdir -p "$o" "$out" /tmp/b
for f in "$bin"/*.xz; do x=$(basename "$f" .xz); xz -dc "$f" >/tmp/b/$x && chmod +x /tmp/b/$x; done
export XDG_CACHE_HOME=/tmp/m3cache
T0=$(date +%s)
step() { echo "== +$(($(date +%s) - T0))s $*"; }
has() { [[ " $sections " == *" $1 "* ]]; }
echo x >/tmp/corpus.txt
step models
python3 scripts/gpu/make_model_and_baseline.py --work "$work" --out "$o" --no-bench >"$o/make.log" 2>&1 || { tail "$o/make.log"; exit 1; }
if has small; then
  step "cudabench -small"
  /tmp/b/cudabench -small -small-sizes 1,16,32,64,128 -work "$work" >"$o/small.txt" 2>&1
  grep -E "^ +[0-9]+ |back-to-back" "$o/small.txt" | cut -c1-90
fi
if has serve; then
  RUNS="${RUNS:-before-mb32 prev-mb32 mb32-triton mb32-triton-p8 mb32-triton-p6 mb32-cont mb32-cont-1inst before-mb128 prev-mb128-1inst mb128-triton mb128-cont-1inst mb128-cont-1inst-p8 mb128-cont-1inst-p6 mb128-cont mb128-cont-grpc mb128-cont-1inst-grpc mb128-cont-binary mb128-cont-1inst-binary mb128-cont-1inst-binary-p6 mb128-cont-1inst-openai mb128-cont-1inst-prof mb32-triton-prof}" \
    PROFILE= SECTIONS=serve scripts/gpu/issue16.sh "$bin" "$o/serve" /tmp/corpus.txt "${DUR:-4s}" 2>&1 | grep -v "^== +0s models"
fi
has tests && SECTIONS=tests scripts/gpu/issue16.sh "$bin" "$o/tests" /tmp/corpus.txt 2>&1 | grep -v "^== +0s models"
has cold && SECTIONS=cold timeout "${COLD_LIMIT:-200}" scripts/gpu/issue16.sh "$bin" "$o/cold" /tmp/corpus.txt 2>&1 | grep -v "^== +0s models"
step pack
tar czf "$out/final17.tgz" -C "$o" --exclude='*.npy' .
