#!/usr/bin/env bash
# Issue 16's fourth-round figures in one GPU-machine call: serve + bench with
# the server's CPU per request (the build before issue 16, m3ectl-old =
# 93a29da, and the build this round started from, m3ectl-prev = b4f9c3c,
# beside this one; the GPU's JSON text on and off), the key configurations a
# second time, the GPU tests, then cold starts. Everything lands in
# OUT/final18.tgz.
# Usage: [ALL="label ..."] [KEY="label ..."] [DUR=4s] scripts/gpu/final18.sh BIN_DIR OUT
#   BIN_DIR: NAME.xz for m3ectl, m3ectl-old, m3ectl-prev, cuda.test.
set -uo pipefail
[ $# -eq 2 ] || { sed -n 2,9p "$0"; exit 2; }
bin=$(realpath "$1") out=$(realpath "$2")
here=$(dirname "$(realpath "$0")")
o=/tmp/final18
mkdir -p "$o" "$out"
echo x >/tmp/corpus.txt # serve and cold read no corpus
ALL=${ALL:-"before-mb32 prev-mb32 mb32-triton mb32-triton-notext mb32-triton-pipe mb32-triton-p8 mb32-cont before-mb128 prev-mb128-1inst mb128-cont-1inst mb128-cont-1inst-notext mb128-cont-1inst-pipe mb128-cont-1inst-p8 mb128-cont-1inst-grpc mb128-cont-1inst-binary mb128-cont-1inst-openai mb128-cont-1inst-openai-notext mb128-triton mb128-cont-1inst-prof mb32-triton-prof"}
KEY=${KEY:-"prev-mb32 mb32-triton mb32-triton-notext prev-mb128-1inst mb128-cont-1inst mb128-cont-1inst-notext"}
pick() { grep -E '^(before|prev|mb|label|client|==)'; }
RUNS="$ALL" SECTIONS=serve "$here/issue16.sh" "$bin" "$o/serve1" /tmp/corpus.txt "${DUR:-4s}" 2>&1 | pick
RUNS="$KEY" SECTIONS=serve "$here/issue16.sh" "$bin" "$o/serve2" /tmp/corpus.txt "${DUR:-4s}" 2>&1 | pick
SECTIONS=tests "$here/issue16.sh" "$bin" "$o/tests" /tmp/corpus.txt 2>&1 | grep -v "^== +0s models"
SECTIONS=cold timeout "${COLD_LIMIT:-200}" "$here/issue16.sh" "$bin" "$o/cold" /tmp/corpus.txt 2>&1 | grep -v "^== +0s models"
tar czf "$out/final18.tgz" -C "$o" --exclude='*.npy' --exclude='*.prof' .
cp "$o"/serve1/cpu-*.prof "$out"/ 2>/dev/null
