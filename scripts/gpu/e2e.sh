#!/usr/bin/env bash
# End to end on the GPU machine: m3ectl serve --engine cuda on a Triton-layout
# repository with the seed article's config (max_batch_size 32, two instances,
# dynamic batching), then m3ectl bench -c 1,2,4,16,32; then max_batch_size 128
# at concurrency 128. With GPUS=2: one GPU against two (gpus: [0, 1]) at
# concurrency 64 and 128 instead. TPR lists the texts per request to run
# (default 1; "1 8" also sends 8-text requests, which take the HTTP layer's
# per-request cost out of the way so the GPUs, not the host, set the pace).
# Usage: [GPUS=2] [TPR="1 8"] scripts/gpu/e2e.sh M3ECTL MODEL_DIR OUT [DURATION]
set -euo pipefail
bin=$1 model=$2 out=$3 dur=${4:-10s}
repo=$(mktemp -d)/model_repository
mkdir -p "$repo/m3e-base/1"
cp -r "$model"/. "$repo/m3e-base/1/"

# groups writes one instance group per GPU (Triton reads gpus: [0, 1] the
# same way: count instances on each listed GPU).
groups() {
  local g sep=""
  for g in $(seq 0 $(($2 - 1))); do printf '%s{ count: %s kind: KIND_GPU gpus: [ %s ] }' "$sep" "$1" "$g"; sep=", "; done
}

config() { # $1 max_batch_size, $2 count per GPU, $3 number of GPUs (default 1)
  cat >"$repo/m3e-base/config.pbtxt" <<CFG
name: "m3e-base"
max_batch_size: $1
input [ { name: "text" dims: [ -1 ] data_type: TYPE_STRING } ]
output [ { name: "embeddings" dims: [ 768 ] data_type: TYPE_FP32 } ]
instance_group [ $(groups "$2" "${3:-1}") ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
CFG
}

serve_and_bench() { # $1 label, $2 levels
  "$bin" serve --model-repository "$repo" --engine cuda --http-port 8000 --grpc-port 8001 --metrics-port 8002 >"$out/serve-$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do
    curl -sf localhost:8000/v2/health/ready >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -sf localhost:8000/v2/health/ready >/dev/null || { echo "server not ready"; tail -20 "$out/serve-$1.log"; kill $pid; return 1; }
  curl -s localhost:8000/v2/models/m3e-base/infer -d '{"inputs":[{"name":"text","shape":[1,1],"datatype":"BYTES","data":["酒店很好"]}]}' | head -c 200; echo
  nvidia-smi --query-gpu=memory.used --format=csv,noheader | sed "s/^/GPU memory used with the server up: /"
  local tpr
  for tpr in ${TPR:-1}; do
    "$bin" bench --url http://127.0.0.1:8000 --model m3e-base -c "$2" --duration "$dur" --warmup 3s --texts-per-request "$tpr" \
      --json "$out/bench-$1-tpr$tpr.json" --label "m3ectl-cuda-$1-tpr$tpr" 2>&1 | tee "$out/bench-$1-tpr$tpr.txt" || true
  done
  kill -INT $pid; wait $pid || true
}

if [ "${GPUS:-1}" = 2 ]; then
  config 128 2 1
  serve_and_bench gpu1 64,128
  config 128 2 2
  serve_and_bench gpu2 64,128
  exit 0
fi
config 32 2
serve_and_bench mb32 1,2,4,16,32
config 128 2
serve_and_bench mb128 128
