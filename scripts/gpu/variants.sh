#!/usr/bin/env bash
# Kernel variants of the CUDA engine side by side, in one GPU-machine call
# (docs/gpu-notes.md): for each setting (environment assignments such as
# "M3ECTL_ATTN_HPB=3 M3ECTL_NVRTC_DEFINES=-DATTN_MINB=3"), the fp16 accuracy
# on the m3e-base-shaped model and the 64 x 128 and 512-short timings
# (cudabench -split); then, with NCU=1, Nsight Compute on the attention and
# LayerNorm kernels of the default build.
# Usage: [NCU=1] scripts/gpu/variants.sh BIN_DIR OUT "VAR=value ..." ...
set -uo pipefail
bin=$(realpath "$1") out=$2
shift 2
if [ -f "$bin/bin.txz" ]; then
  mkdir -p /tmp/m3ectl-bin && tar xJf "$bin/bin.txz" -C /tmp/m3ectl-bin && bin=/tmp/m3ectl-bin
fi
work=/tmp/gpuwork
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
if [ ! -f "$work/speedsets.json" ]; then
  python3 scripts/gpu/make_model_and_baseline.py --work "$work" --out "$out" --no-bench >"$out/make.log" 2>&1 || { tail "$out/make.log"; exit 1; }
fi
(cd pkg/engine/cuda && M3ECTL_NVRTC_VERBOSE=1 "$bin/cuda.test" -test.run 'Tiny' -test.v) >"$out/cuda-test.log" 2>&1
echo "cuda.test: exit $?"; grep -E "^(---|ok|FAIL|PASS)|attn_mma" -A2 "$out/cuda-test.log" | grep -v "^--$" | grep -E "FAIL|PASS|ok|registers|spill" | head -20
for v in "$@"; do
  echo "== $v"
  env $v "$bin/cudabench" -work "$work" -split 2>&1 | tail -5
done
if [ -n "${NCU:-}" ]; then
  ncu --clock-control none --set full --import-source yes -k regex:'attn_mma|add_ln|ln_res' --launch-skip 40 --launch-count 3 \
    -o "$out/prof" "$bin/cudabench" -work "$work" -ncu >"$out/ncu.log" 2>&1 || tail -5 "$out/ncu.log"
  ncu -i "$out/prof.ncu-rep" --page details >"$out/details.txt" 2>&1
  ncu -i "$out/prof.ncu-rep" --page raw --csv >"$out/raw.csv" 2>&1
  ncu -i "$out/prof.ncu-rep" --page source --csv --print-source sass -k attn_mma >"$out/attn-sass.csv" 2>&1
  grep -E "attn_mma|add_ln|ln_res|^    Duration|Registers Per|Achieved Occupancy|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|Issue Slots Busy|Warp Cycles Per Issued" "$out/details.txt" | head -60
fi
