#!/usr/bin/env bash
# Issue 16's sixth-round figures in one GPU-machine call: serve + bench with
# the server's CPU per request for this build (m3ectl) and the build this
# round started from (m3ectl-old = d692f8f) in the same passes; the
# continuous policy's wait for returning clients on and off (-nofill);
# GOMAXPROCS=6; repeats of the key configurations; then, unless
# TESTS=0, the GPU tests. Everything lands in OUT/final20.tgz (CPU
# profiles included).
# Usage: [ALL="label ..."] [DUR=4s] [TESTS=1] scripts/gpu/final20.sh BIN_DIR OUT
#   BIN_DIR: NAME.xz for m3ectl, m3ectl-old and (for the tests) cuda.test.
set -uo pipefail
[ $# -eq 2 ] || { sed -n 2,10p "$0"; exit 2; }
bin=$(realpath "$1") out=$(realpath "$2")
here=$(dirname "$(realpath "$0")")
o=/tmp/final20
mkdir -p "$o" "$out"
echo x >/tmp/corpus.txt # serve and the tests read no corpus
ALL=${ALL:-"warm-mb128 warm-mb32 mb32-cont-1inst mb32-cont-1inst-nofill mb32-triton mid-mb32 mb32-cont mb32-cont-nofill mb128-cont-1inst mb128-cont-1inst-nofill mid-mb128-1inst mb128-triton mb128-cont mb128-cont-1inst-grpc mb128-cont-1inst-binary mb128-cont-1inst-openai mb32-cont-1inst-2 mb32-triton-2 mid-mb32-2 mb128-cont-1inst-2 mid-mb128-1inst-2 mb32-cont-1inst-3 mb32-triton-3 mid-mb32-3 mb128-cont-1inst-3 mid-mb128-1inst-3 mb128-cont-1inst-p6-2 mb32-triton-p6-2 mb128-cont-1inst-prof mb32-triton-prof"}
RUNS="$ALL" SECTIONS=serve "$here/issue16.sh" "$bin" "$o/serve" /tmp/corpus.txt "${DUR:-4s}" 2>&1 | grep -E '^(mb|mid|prev|warm|label|client|==)'
[ "${TESTS:-1}" = 0 ] || SECTIONS=tests "$here/issue16.sh" "$bin" "$o/tests" /tmp/corpus.txt 2>&1 | grep -v "^== +0s models"
tar czf "$out/final20.tgz" -C "$o" --exclude='*.npy' .
