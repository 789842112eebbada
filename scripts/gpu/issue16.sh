#!/usr/bin/env bash
# Issue 16's GPU figures in one GPU-machine call (docs/gpu.md, "Serving at
# the engine's speed"): sentence-transformers' bulk baseline and m3ectl
# embed --output on the same corpus and GPU, cold starts, serve + bench
# with the server's CPU time per request, the package's GPU tests, and the
# CPU server/engine ratio. SECTIONS picks parts (default: all, in order).
# Serve runs: RUNS="mb32-cont ..." picks some by label, PROFILE=1 writes a Go
# CPU profile of each (OUT/cpu-LABEL.prof, M3ECTL_CPUPROFILE).
# Usage: [SECTIONS="bulk cold serve tests ort"] scripts/gpu/issue16.sh BIN_DIR OUT CORPUS [DURATION]
#   BIN_DIR holds bin.txz (m3ectl, m3ectl-old = the build before issue 16,
#   cuda.test, serve.test; m3ectl.xz beside it replaces its m3ectl) and,
#   for "ort", libonnxruntime.so.xz. CORPUS is scripts/gpu/make_corpus.py's
#   output (plain or .xz).
set -uo pipefail
bin=$(realpath "$1") out=$(realpath "$2") corpus=$3 dur=${4:-5s}
here=$(dirname "$(realpath "$0")")
sections=${SECTIONS:-"bulk cold serve tests ort"}
mkdir -p /tmp/b "$out"
[ -f "$bin/bin.txz" ] && tar xJf "$bin/bin.txz" -C /tmp/b
# NAME.xz, when present, replaces the archive's NAME (a rebuild carried alone).
for x in m3ectl m3ectl-old m3ectl-prev serve.test cuda.test cudabench; do
  [ -f "$bin/$x.xz" ] && xz -dc "$bin/$x.xz" >/tmp/b/$x && chmod +x /tmp/b/$x
done
b=/tmp/b work=/tmp/gpuwork
export XDG_CACHE_HOME=/tmp/m3cache
T0=$(date +%s)
step() { echo "== +$(($(date +%s) - T0))s $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
echo "cores: $(nproc)  date: $(date -u +%FT%TZ)" | tee -a "$out/gpu.txt"
case $corpus in *.xz) xz -dc "$corpus" >/tmp/corpus.txt; corpus=/tmp/corpus.txt ;; esac
head -2000 "$corpus" >/tmp/head2000.txt
texts8=(酒店很好 房间很小但是很干净 m3e是一个中文句向量模型 今天天气不错 推理服务器和推理后端 Triton部署Bert文本向量化服务 动态批处理 向量检索)
step models
if [ ! -f "$work/m3e-base-rand/modules.json" ]; then
  python3 scripts/gpu/make_model_and_baseline.py --work "$work" --out "$out" --no-bench >"$out/make.log" 2>&1 || { tail "$out/make.log"; exit 1; }
fi
base=$work/m3e-base-rand large=$work/m3e-large-rand
# The 24x1024 model only for the sections that use it.
[[ " $sections " != *" bulk "* && " $sections " != *" cold "* ]] || [ -f "$large/modules.json" ] || python3 "$here/bulk_baseline.py" --work "$work" --out "$out" --corpus "$corpus" --make-only 2>&1 | grep -v -i warn

has() { [[ " $sections " == *" $1 "* ]]; }
ns() { date +%s%N; }

if has bulk; then
  step "sentence-transformers baseline (and the 24x1024 model)"
  PYTHONUNBUFFERED=1 python3 "$here/bulk_baseline.py" --work "$work" --out "$out" --corpus "$corpus" 2>&1 | grep -v -i warn | tee "$out/st.log"
  for m in m3e-base-rand m3e-large-rand; do
    step "m3ectl embed --output, $m"
    # First run fills the NVRTC and GEMM caches (as any earlier run would).
    "$b/m3ectl" embed --engine cuda --model "$work/$m" --input "$corpus" -o /tmp/warm.npy --quiet 2>"$out/bulk-$m-warm.log"
    for f in npy parquet jsonl f16.npy; do
      [ "$m" = m3e-large-rand ] && [ "$f" != npy ] && continue
      dt=""; o=/tmp/$m.$f
      [ "$f" = f16.npy ] && dt="--dtype float16"
      s=$(ns); "$b/m3ectl" embed -v --engine cuda --model "$work/$m" --input "$corpus" -o "$o" $dt 2>"$out/bulk-$m-$f.log"; rc=$?; e=$(ns)
      echo "embed --output .$f ($m): exit $rc, whole job $(( (e - s) / 1000000 )) ms = $(python3 -c "print(f'{100000/(($e-$s)/1e9):,.0f}')") texts/s; $(grep -o 'run=[^ ]*' "$out/bulk-$m-$f.log" | tail -1) $(grep -o 'tokens=[0-9]*' "$out/bulk-$m-$f.log" | tail -1) $(grep -o 'first_out_since_start=[^ ]*' "$out/bulk-$m-$f.log" | tail -1); $(ls -la "$o" | awk '{print $5}') bytes"
    done
    grep "cuda engine ready" "$out/bulk-$m-npy.log" | head -1 | cut -c1-400
    "$b/m3ectl" embed --engine cuda --model "$work/$m" </tmp/head2000.txt >/tmp/$m-head.jsonl 2>/dev/null
    chk=("$m" /tmp/$m.npy /tmp/$m-head.jsonl)
    [ "$m" = m3e-base-rand ] && chk+=("$m" /tmp/$m.f16.npy /tmp/$m-head.jsonl)
    python3 "$here/bulk_baseline.py" --work "$work" --out "$out" --corpus /tmp/head2000.txt --check "${chk[@]}" 2>&1 | grep -v -i warn
  done
  step "two engines vs one on the GPU"
  for v in ${VARIANTS:-"--instances 1"}; do
    s=$(ns); "$b/m3ectl" embed --engine cuda --model "$base" --input "$corpus" -o /tmp/v.npy --quiet $v; e=$(ns)
    echo "base .npy $v: $(( (e - s) / 1000000 )) ms"
  done
fi

if has check; then
  step "npy against embed's JSON (rows of the earlier bulk run)"
  for m in m3e-base-rand m3e-large-rand; do
    [ -f /tmp/$m.npy ] || "$b/m3ectl" embed --engine cuda --model "$work/$m" --input "$corpus" -o /tmp/$m.npy --quiet
    "$b/m3ectl" embed --engine cuda --model "$work/$m" </tmp/head2000.txt >/tmp/$m-head.jsonl 2>/dev/null
    chk=("$m" /tmp/$m.npy /tmp/$m-head.jsonl)
    [ -f /tmp/$m.f16.npy ] && chk+=("$m" /tmp/$m.f16.npy /tmp/$m-head.jsonl)
    [ -f "$out/st-$m-head.npy" ] && python3 "$here/bulk_baseline.py" --work "$work" --out "$out" --corpus /tmp/head2000.txt --check "${chk[@]}" 2>&1 | grep -v -i warn
  done
fi

if has cold; then
  step "cold start (warm disk caches; first run of each binary warms its own)"
  for m in "$base" "$large"; do
    for bn in m3ectl-old m3ectl; do
      "$b/$bn" embed --engine cuda --model "$m" "${texts8[@]}" >/dev/null 2>&1
      for i in 1 2 3; do
        s=$(ns); "$b/$bn" embed -v --engine cuda --model "$m" "${texts8[@]}" >/dev/null 2>/tmp/cold.log; e=$(ns)
        echo "embed 8 texts $(basename "$m") $bn: $(( (e - s) / 1000000 )) ms"
      done
      [ "$bn" = m3ectl ] && grep -h "cuda engine ready\|first embedding\|shape first" /tmp/cold.log | sed 's/^time=[^ ]* level=DEBUG //' | cut -c1-420
    done
    for bn in m3ectl-old m3ectl; do
      for i in 1 2; do
        s=$(ns); "$b/$bn" serve -v --model "$m" --engine cuda --http-port 8100 --grpc-port -1 --metrics-port -1 >/tmp/serve-cold.log 2>&1 &
        pid=$!
        until curl -sf -o /dev/null localhost:8100/v2/health/ready; do sleep 0.005; kill -0 $pid 2>/dev/null || break; done
        e=$(ns); kill -INT $pid; wait $pid 2>/dev/null
        echo "serve --model $(basename "$m") $bn: ready after $(( (e - s) / 1000000 )) ms"
      done
    done
  done
fi

if has serve; then
  step "serve + bench, server on cores 0-9, client on 10-15"
  repo=/tmp/repo
  config() { # max_batch_size policy [instances]
    mkdir -p "$repo/m3e-base/1" && cp -r "$base"/. "$repo/m3e-base/1/"
    local p=""
    [ "$2" = continuous ] && p='parameters { key: "BATCHING_POLICY" value: { string_value: "continuous" } }'
    cat >"$repo/m3e-base/config.pbtxt" <<CFG
name: "m3e-base"
max_batch_size: $1
input [ { name: "text" dims: [ -1 ] data_type: TYPE_STRING } ]
output [ { name: "embeddings" dims: [ 768 ] data_type: TYPE_FP32 } ]
instance_group [ { count: ${3:-2} kind: KIND_GPU } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
$p
CFG
  }
  taskset -c 10-15 "$b/m3ectl" bench --self-test -c 32,128 --duration 3s --warmup 1s 2>&1 | tail -4 | tee "$out/selftest.txt"
  echo "label c proto infer/s p50 p95 p99 mean_batch server_cpu_us_per_req server_cores_busy" | tee "$out/serve.txt"
  run() { # label binary mbs policy levels [extra bench flags] [env] [instances]
    local label=$1 bn=$2 mbs=$3 pol=$4 levels=$5 extra=${6:-} envs=${7:-} inst=${8:-2}
    # RUNS="label ..." picks runs; PROFILE=1 writes each run's Go CPU profile.
    [ -n "${RUNS:-}" ] && [[ " $RUNS " != *" $label "* ]] && return
    [ -n "${PROFILE:-}" ] && [ "$bn" = m3ectl ] && envs="$envs M3ECTL_CPUPROFILE=$out/cpu-$label.prof"
    config "$mbs" "$pol" "$inst"
    env $envs taskset -c 0-9 "$b/$bn" serve --model-repository "$repo" --engine cuda --http-port 8000 --grpc-port 8001 --metrics-port 8002 ${SERVE_FLAGS:-} >"$out/serve-$label.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 400); do curl -sf -o /dev/null localhost:8000/v2/health/ready && break; sleep 0.05; done
    for c in ${levels//,/ }; do
      local proto=kserve-http url=http://127.0.0.1:8000
      [[ "$extra" == *grpc* ]] && proto=kserve-grpc url=127.0.0.1:8001
      [[ "$extra" == *openai* ]] && proto=openai
      local bflags=""
      [[ "$extra" == *binary* ]] && bflags="--binary-output"
      taskset -c 10-15 "$b/m3ectl" bench --url $url --protocol $proto --model m3e-base -c "$c" --duration 2s --warmup 1s $bflags --no-server-stats >/dev/null 2>&1
      local t0; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
      taskset -c 10-15 "$b/m3ectl" bench --url $url --protocol $proto --model m3e-base -c "$c" --duration "$dur" --warmup 0s $bflags --json "$out/bench-$label-c$c.json" >"$out/bench-$label-c$c.txt" 2>&1
      local t1; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
      python3 - "$out/bench-$label-c$c.json" "$label" "$c" "$proto$bflags" $((t1 - t0)) "$(getconf CLK_TCK)" <<'PY' | tee -a "$out/serve.txt"
import json, sys
r = json.load(open(sys.argv[1])); l = r["levels"][0]; ticks, hz = int(sys.argv[5]), int(sys.argv[6])
cpu = ticks / hz
srv = l.get("server") or {}
print(sys.argv[2], sys.argv[3], sys.argv[4], f'{l["throughput"]:.0f}', f'{l["latency_ms"]["p50"]:.2f}', f'{l["latency_ms"]["p95"]:.2f}', f'{l["latency_ms"]["p99"]:.2f}',
      f'{srv.get("mean_batch", 0):.1f}', f'{cpu / max(l["requests"], 1) * 1e6:.0f}', f'{cpu / l["duration_s"]:.1f}')
PY
    done
    kill -INT $pid
    (sleep 15; kill -9 $pid 2>/dev/null) &
    local killer=$!
    wait $pid 2>/dev/null
    kill $killer 2>/dev/null
  }
  # Labels: mbN = max_batch_size, triton|cont = policy, 1inst = one
  # instance (else two, the seed's count), nopipe = batches one at a time
  # (the default), pipe = batches overlapped on the instance
  # (M3ECTL_CUDA_PIPELINE=1).
  # warm-: first sight of the serving shapes on a fresh machine (GEMM
  # choices, graphs), so that the runs after it start with warm caches.
  run warm-mb128 m3ectl 128 continuous 128 "" "" 1
  run warm-mb32 m3ectl 32 triton 32
  run before-mb32 m3ectl-old 32 triton 32
  run before-mb128 m3ectl-old 128 triton 128
  run mb32-triton m3ectl 32 triton 1,32
  run mb32-triton-pipe m3ectl 32 triton 32 "" M3ECTL_CUDA_PIPELINE=1
  run mb32-cont m3ectl 32 continuous 1,32
  run mb32-cont-pipe m3ectl 32 continuous 32 "" M3ECTL_CUDA_PIPELINE=1
  run mb32-cont-1inst m3ectl 32 continuous 32 "" "" 1
  run mb32-cont-1inst-pipe m3ectl 32 continuous 32 "" M3ECTL_CUDA_PIPELINE=1 1
  run mb32-cont-1inst-pipe-tail1 m3ectl 32 continuous 32 "" "M3ECTL_CUDA_PIPELINE=1 M3ECTL_CUDA_TAIL_LAYERS=1" 1
  run mb32-cont-1inst-pipe-tail6 m3ectl 32 continuous 32 "" "M3ECTL_CUDA_PIPELINE=1 M3ECTL_CUDA_TAIL_LAYERS=6" 1
  run mb128-triton m3ectl 128 triton 128
  run mb128-cont m3ectl 128 continuous 32,128
  run mb128-cont-pipe m3ectl 128 continuous 128 "" M3ECTL_CUDA_PIPELINE=1
  run mb128-cont-1inst m3ectl 128 continuous 128 "" "" 1
  run mb128-cont-1inst-pipe m3ectl 128 continuous 128 "" M3ECTL_CUDA_PIPELINE=1 1
  run mb128-cont-1inst-pipe-tail1 m3ectl 128 continuous 128 "" "M3ECTL_CUDA_PIPELINE=1 M3ECTL_CUDA_TAIL_LAYERS=1" 1
  # -block: waiting on the end of each batch alone (M3ECTL_CUDA_SYNC=block),
  # the engine's wait before the tail poll.
  run mb32-triton-block m3ectl 32 triton 32 "" M3ECTL_CUDA_SYNC=block
  run mb32-cont-1inst-block m3ectl 32 continuous 32 "" M3ECTL_CUDA_SYNC=block 1
  run mb128-cont-1inst-block m3ectl 128 continuous 128 "" M3ECTL_CUDA_SYNC=block 1
  # -x: the same with the experiment's settings XENV (explore16.sh).
  run mb32-triton-x m3ectl 32 triton 32 "" "${XENV:-}"
  run mb32-cont-1inst-x m3ectl 32 continuous 32 "" "${XENV:-}" 1
  run mb128-cont-1inst-x m3ectl 128 continuous 128 "" "${XENV:-}" 1
  run mb128-cont-grpc m3ectl 128 continuous 128 grpc
  run mb128-cont-binary m3ectl 128 continuous 128 binary
  run mb128-cont-1inst-grpc m3ectl 128 continuous 128 grpc "" 1
  run mb128-cont-1inst-binary m3ectl 128 continuous 128 binary "" 1
  run mb128-cont-1inst-openai m3ectl 128 continuous 128 openai "" 1
  # -notext: the server formats the embeddings itself (M3ECTL_CUDA_TEXT=0),
  # as before the GPU wrote their JSON text (textfmt.go).
  run mb32-triton-notext m3ectl 32 triton 32 "" M3ECTL_CUDA_TEXT=0
  run mb128-cont-1inst-notext m3ectl 128 continuous 128 "" M3ECTL_CUDA_TEXT=0 1
  run mb128-cont-1inst-openai-notext m3ectl 128 continuous 128 openai M3ECTL_CUDA_TEXT=0 1
  # prev-: the build this round started from (m3ectl-prev: commit 2183576 in
  # the third round, b4f9c3c in the fourth);
  # -pN: the same server with GOMAXPROCS=N (fewer idle Ps to spin).
  run prev-mb32 m3ectl-prev 32 triton 32
  run prev-mb128-1inst m3ectl-prev 128 continuous 128 "" "" 1
  run mb128-cont-1inst-p8 m3ectl 128 continuous 128 "" GOMAXPROCS=8 1
  run mb32-triton-p8 m3ectl 32 triton 32 "" GOMAXPROCS=8
  run mb128-cont-1inst-p6 m3ectl 128 continuous 128 "" GOMAXPROCS=6 1
  run mb32-triton-p6 m3ectl 32 triton 32 "" GOMAXPROCS=6
  run mb128-cont-1inst-binary-p6 m3ectl 128 continuous 128 binary GOMAXPROCS=6 1
  # -nolane: every HTTP request through net/http (M3ECTL_HTTP_LANE=0), as
  # before the server's own HTTP/1.1 loop (pkg/serve/lane.go); -poll: the
  # end of a batch polled over its whole tail (M3ECTL_CUDA_SYNC=poll), as
  # before the learned sleep (pkg/engine/cuda/tailsleep.go). -2: a repeat.
  run mb128-cont-1inst-nolane m3ectl 128 continuous 128 "" M3ECTL_HTTP_LANE=0 1
  run mb128-cont-1inst-poll m3ectl 128 continuous 128 "" M3ECTL_CUDA_SYNC=poll 1
  # -spintail: the fifth round's final call (docs/gpu.md) measured a build
  # that slept 4 µs between polls; this is the spinning poll it ran
  # against (M3ECTL_CUDA_SYNC=spintail there), the default again.
  run mb128-cont-1inst-spintail m3ectl 128 continuous 128 "" "" 1
  run mb32-triton-spintail m3ectl 32 triton 32
  run mb32-triton-nolane m3ectl 32 triton 32 "" M3ECTL_HTTP_LANE=0
  run mb32-triton-poll m3ectl 32 triton 32 "" M3ECTL_CUDA_SYNC=poll
  run mb32-cont-1inst-nolane m3ectl 32 continuous 32 "" M3ECTL_HTTP_LANE=0 1
  run mb128-cont-1inst-openai-nolane m3ectl 128 continuous 128 openai M3ECTL_HTTP_LANE=0 1
  # mid-: m3ectl-old as a build between, in the same configurations.
  run mid-mb128-1inst m3ectl-old 128 continuous 128 "" "" 1
  run mid-mb32 m3ectl-old 32 triton 32
  run mb128-cont-1inst-2 m3ectl 128 continuous 128 "" "" 1
  run mb32-triton-2 m3ectl 32 triton 32
  run prev-mb128-1inst-2 m3ectl-prev 128 continuous 128 "" "" 1
  run prev-mb32-2 m3ectl-prev 32 triton 32
  run mid-mb128-1inst-2 m3ectl-old 128 continuous 128 "" "" 1
  run mid-mb32-2 m3ectl-old 32 triton 32
  run mb128-cont-1inst-3 m3ectl 128 continuous 128 "" "" 1
  run mb32-triton-3 m3ectl 32 triton 32
  # Sixth round: the continuous policy's wait for returning clients
  # (scheduler filler) on and off (-nofill), repeats (-2, -3) and the
  # build this round started from (mid- = m3ectl-old). The final call
  # measured builds where the wait was on by default; it is off since
  # (M3ECTL_CONTINUOUS_FILL=1 turns it on), so the -nofill runs now measure
  # the default too (until the seventh round turned it on again).
  run mb32-cont-1inst-nofill m3ectl 32 continuous 32 "" M3ECTL_CONTINUOUS_FILL=0 1
  run mb32-cont-nofill m3ectl 32 continuous 1,32 "" M3ECTL_CONTINUOUS_FILL=0
  run mb128-cont-1inst-nofill m3ectl 128 continuous 128 "" M3ECTL_CONTINUOUS_FILL=0 1
  run mb128-cont-nofill m3ectl 128 continuous 128 "" M3ECTL_CONTINUOUS_FILL=0
  run mb128-cont m3ectl 128 continuous 128
  run mb32-cont-1inst-2 m3ectl 32 continuous 32 "" "" 1
  run mb32-cont-1inst-3 m3ectl 32 continuous 32 "" "" 1
  run mb32-cont-2 m3ectl 32 continuous 32
  run mid-mb32-cont-1inst m3ectl-old 32 continuous 32 "" "" 1
  run mid-mb32-3 m3ectl-old 32 triton 32
  run mid-mb128-1inst-3 m3ectl-old 128 continuous 128 "" "" 1
  run mb32-triton-p6-2 m3ectl 32 triton 32 "" GOMAXPROCS=6
  run mb128-cont-1inst-p6-2 m3ectl 128 continuous 128 "" GOMAXPROCS=6 1
  # Seventh round: the wait for returning clients chooses its cycle by
  # measuring both (scheduler picker) and is on by default; -nofill never
  # waits (M3ECTL_CONTINUOUS_FILL=0). Triton's policy on one instance for
  # the comparison at equal instance counts.
  run mb32-triton-1inst m3ectl 32 triton 32 "" "" 1
  run mb128-triton-1inst m3ectl 128 triton 128 "" "" 1
  run mb32-triton-1inst-2 m3ectl 32 triton 32 "" "" 1
  run mb32-cont-1inst-nofill-2 m3ectl 32 continuous 32 "" M3ECTL_CONTINUOUS_FILL=0 1
  run mb128-cont-1inst-nofill-2 m3ectl 128 continuous 128 "" M3ECTL_CONTINUOUS_FILL=0 1
  run mb128-triton-2 m3ectl 128 triton 128
  run mb32-cont-3 m3ectl 32 continuous 32
  run mb32-cont-1inst-4 m3ectl 32 continuous 32 "" "" 1
  run mb32-triton-1inst-3 m3ectl 32 triton 32 "" "" 1
  run mb32-cont-1inst-5 m3ectl 32 continuous 32 "" "" 1
  run mb32-triton-1inst-4 m3ectl 32 triton 32 "" "" 1
  run mb32-cont-4 m3ectl 32 continuous 32
  run mb32-triton-4 m3ectl 32 triton 32
  # -prof: the same as the run without the suffix, with a Go CPU profile.
  run mb128-cont-1inst-prof m3ectl 128 continuous 128 "" "M3ECTL_CPUPROFILE=$out/cpu-mb128-cont-1inst.prof" 1
  run mb32-triton-prof m3ectl 32 triton 32 "" "M3ECTL_CPUPROFILE=$out/cpu-mb32-triton.prof"
fi

if has tests; then
  step "GPU tests"
  (cd pkg/engine/cuda && timeout 150 "$b/cuda.test" -test.v) >"$out/cuda-test.txt" 2>&1
  echo "cuda.test exit $?: $(grep -c -- '--- PASS' "$out/cuda-test.txt") passed, $(grep -c -- '--- FAIL' "$out/cuda-test.txt") failed, $(grep -c -- '--- SKIP' "$out/cuda-test.txt") skipped"
  grep -A5 -- '--- FAIL' "$out/cuda-test.txt" | head -20
fi

if has ort && [ -f "$bin/libonnxruntime.so.xz" ]; then
  step "CPU (ONNX Runtime, 16 cores): server / engine alone at c=32, m3e-base-shaped"
  xz -dc "$bin/libonnxruntime.so.xz" >/tmp/libonnxruntime.so
  "$b/m3ectl" export --model "$base" --out /tmp/base-onnx/model.onnx >/dev/null 2>&1 || echo "export failed"
  for pol in ${ORT_POLICIES:-triton continuous}; do
    (cd pkg/serve && ONNXRUNTIME_LIB=/tmp/libonnxruntime.so M3ECTL_BENCH_MODEL=/tmp/base-onnx/model.onnx M3ECTL_BENCH_POLICY=$pol \
      timeout 100 "$b/serve.test" -test.run XXX -test.bench BenchmarkEngineVsServer -test.benchtime ${ORT_N:-2000}x) >"$out/ort-$pol.txt" 2>&1
    echo "policy $pol:"; grep -E "Benchmark|FAIL|not ready" "$out/ort-$pol.txt" | cut -c1-700
  done
fi
step done
