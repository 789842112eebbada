#!/usr/bin/env bash
# Issue 16's fifth-round figures in one GPU-machine call: serve + bench with
# the server's CPU per request for this build (m3ectl), the build between
# (m3ectl-old: the lane tuned, before TextOnly and the tail's sleeps) and the
# build this round started from (m3ectl-prev = 887ee11), in the same passes
# (run on 5b37f43, whose tail slept 4 µs between polls; -spintail was the
# spinning poll, the default again since);
# the lane off, the tail spinning and GOMAXPROCS=6 as variants of this
# build; the key configurations three times; then the GPU tests. Everything
# lands in OUT/final19.tgz (CPU profiles included).
# Usage: [ALL="label ..."] [DUR=4s] scripts/gpu/final19.sh BIN_DIR OUT
#   BIN_DIR: NAME.xz for m3ectl, m3ectl-old, m3ectl-prev, cuda.test.
set -uo pipefail
[ $# -eq 2 ] || { sed -n 2,11p "$0"; exit 2; }
bin=$(realpath "$1") out=$(realpath "$2")
here=$(dirname "$(realpath "$0")")
o=/tmp/final19
mkdir -p "$o" "$out"
echo x >/tmp/corpus.txt # serve and the tests read no corpus
ALL=${ALL:-"warm-mb128 warm-mb32 mb32-triton mb32-cont mb32-cont-1inst mb128-cont-1inst mb128-cont-1inst-grpc mb128-cont-1inst-binary mb128-cont-1inst-openai mb128-triton prev-mb32 prev-mb128-1inst mid-mb128-1inst mid-mb32 mb128-cont-1inst-nolane mb32-triton-nolane mb128-cont-1inst-spintail mb32-triton-spintail mb128-cont-1inst-p6 mb32-triton-p6 mb128-cont-1inst-2 mb32-triton-2 prev-mb128-1inst-2 prev-mb32-2 mid-mb128-1inst-2 mid-mb32-2 mb128-cont-1inst-3 mb32-triton-3 mb128-cont-1inst-prof mb32-triton-prof"}
RUNS="$ALL" SECTIONS=serve "$here/issue16.sh" "$bin" "$o/serve" /tmp/corpus.txt "${DUR:-4s}" 2>&1 | grep -E '^(mb|mid|prev|warm|label|client|==)'
SECTIONS=tests "$here/issue16.sh" "$bin" "$o/tests" /tmp/corpus.txt 2>&1 | grep -v "^== +0s models"
tar czf "$out/final19.tgz" -C "$o" --exclude='*.npy' .
