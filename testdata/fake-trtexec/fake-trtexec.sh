#!/usr/bin/env bash
# A stand-in for NVIDIA's trtexec, for tests where TensorRT cannot be
# installed. trtexec-8.6 and trtexec-10 exec it with FAKE_TRT_VERSION set.
# It checks its arguments as strictly as the real tool (the accepted options
# come from gofake/options_gen.go, generated from NVIDIA's sources): unknown or removed
# flags, the shape-profile grammar, MIN <= OPT <= MAX, profiles for every
# dynamic input, --loadInputs file sizes against --shapes and the engine's
# input dtype, and an engine written by the same TensorRT version.
#
# Environment:
#   FAKE_TRT_VERSION        8601 or 100300 (set by the wrappers)
#   M3ECTL_FAKE_TRT_INPUTS  the model's dynamic inputs (default input_ids,attention_mask)
#   M3ECTL_FAKE_TRT_ARGV    append each invocation's arguments (one line, space separated) to this file
#   M3ECTL_FAKE_TRT_OUTPUT  JSON copied to --exportOutput (trtexec's export format)
#   M3ECTL_FAKE_TRT_FAIL    "build": fail the build with [E] lines; "noengine": pass without writing one
set -u
ver=${FAKE_TRT_VERSION:?}
major=$(( ver >= 100000 ? ver / 10000 : ver / 1000 ))
banner="TensorRT.trtexec [TensorRT v${ver}] # ${FAKE_TRT_NAME:-$0} $*"
ts() { date '+[%m/%d/%Y-%H:%M:%S]'; }
log() { echo "$(ts) [$1] $2"; }
fail() {
	for m in "$@"; do log E "$m"; done
	echo "&&&& FAILED $banner"
	exit 1
}
[ -n "${M3ECTL_FAKE_TRT_ARGV:-}" ] && echo "$*" >>"$M3ECTL_FAKE_TRT_ARGV"
echo "&&&& RUNNING $banner"

# The options the version's trtexec accepts, as generated from NVIDIA's
# samples/common/sampleOptions.cpp at that tag (gofake/options_gen.go, made by
# scripts/gen-trtexec-options.sh), so both fakes accept exactly the same.
accepted=" $(grep -E "^[[:space:]]*${ver}: " "$(dirname "${BASH_SOURCE[0]}")/gofake/options_gen.go" | grep -oE '"--[A-Za-z0-9]+"' | tr -d '"' | sed 's/^--//' | tr '\n' ' ')"
[ "$accepted" != " " ] || { echo "fake trtexec: no option list for $ver" >&2; exit 2; }
valued=" onnx saveEngine loadEngine minShapes optShapes maxShapes shapes memPoolSize timingCacheFile builderOptimizationLevel loadInputs exportOutput exportTimes exportProfile exportLayerInfo iterations warmUp duration avgRuns device profilingVerbosity threads infStreams sparsity inputIOFormats outputIOFormats precisionConstraints layerPrecisions tacticSources calib maxAuxStreams workspace minTiming maxBatch batch streams weightStreamingBudget "

declare -A opt
for a in "$@"; do
	case "$a" in
	--*=*) k=${a%%=*}; k=${k#--}; v=${a#*=} ;;
	--*) k=${a#--}; v="" ;;
	*) fail "Unknown option: $a" ;;
	esac
	if [[ "$accepted" != *" $k "* ]]; then
		fail "Unknown option: --$k $v"
	fi
	if [[ "$valued" == *" $k "* && -z "$v" ]]; then
		fail "Invalid value for --$k: a value is required (--$k=...)"
	fi
	if [[ "$valued" != *" $k "* && -n "$v" && "$a" == *=* ]]; then
		fail "Unknown option: --$k $v"
	fi
	opt[$k]=$v
done

if [ -n "${opt[help]+x}" ]; then
	cat <<USAGE
=== Model Options ===
  --onnx=<file>               ONNX model
=== Build Options ===
  --minShapes=spec            Build with dynamic shapes using a profile with the min shapes provided
  --optShapes=spec            Build with dynamic shapes using a profile with the opt shapes provided
  --maxShapes=spec            Build with dynamic shapes using a profile with the max shapes provided
  --memPoolSize=poolspec      Specify the size constraints of the designated memory pool(s)
  --skipInference             Exit after the engine has been built and skip inference perf measurement
=== Inference Options ===
  --loadEngine=<file>         Load a serialized engine
  --shapes=spec               Set input shapes for dynamic shapes inference inputs.
  --loadInputs=spec           Load input values from files
  --exportOutput=<file>       Write the output tensors to a json file
USAGE
	[ "$major" -lt 10 ] && echo "  --workspace=N               Set workspace size in MiB. (deprecated)"
	exit 0
fi

log I "=== Model Options ==="
[ -n "${opt[workspace]+x}" ] && log W "--workspace flag has been deprecated by --memPoolSize flag."
[ -n "${opt[buildOnly]+x}" ] && log W "--buildOnly flag has been deprecated by --skipInference flag."

# parse_shapes NAME SPEC fills the associative array NAME with input → dims.
parse_shapes() {
	local -n out=$1
	local spec=$2 part name dims d
	IFS=',' read -ra parts <<<"$spec"
	for part in "${parts[@]}"; do
		if [[ "$part" =~ ^(.+):([0-9]+(x[0-9]+)*)$ ]]; then
			name=${BASH_REMATCH[1]}; dims=${BASH_REMATCH[2]}
		else
			fail "Invalid shape spec: \"$part\" (expected name:AxBx...)"
		fi
		name=${name#\'}; name=${name%\'}
		IFS='x' read -ra ds <<<"$dims"
		for d in "${ds[@]}"; do
			[[ "$d" =~ ^0*[1-9][0-9]*$ ]] || fail "Invalid dimension $d in shape spec \"$part\""
		done
		[ -n "${out[$name]+x}" ] && fail "Duplicate shape for input $name"
		out[$name]=$dims
	done
}

IFS=',' read -ra dyn <<<"${M3ECTL_FAKE_TRT_INPUTS:-input_ids,attention_mask}"

if [ -n "${opt[onnx]+x}" ]; then
	[ -f "${opt[onnx]}" ] || fail "Failed to parse onnx file" "Parsing model failed" "Failed to create engine from model or file." "Engine set up failed"
	[ -n "${opt[loadEngine]+x}" ] && fail "--onnx and --loadEngine cannot be used together"
	if [ -n "${opt[memPoolSize]+x}" ]; then
		IFS=',' read -ra pools <<<"${opt[memPoolSize]}"
		for p in "${pools[@]}"; do
			[[ "$p" =~ ^(workspace|dlaSRAM|dlaLocalDRAM|dlaGlobalDRAM|tacticSharedMem):[0-9]+(\.[0-9]+)?[BKMG]?$ ]] || fail "Invalid memPoolSize spec: $p"
		done
	fi
	if [ -n "${opt[builderOptimizationLevel]+x}" ]; then
		[[ "${opt[builderOptimizationLevel]}" =~ ^[0-5]$ ]] || fail "Invalid builderOptimizationLevel: ${opt[builderOptimizationLevel]} (0 to 5)"
	fi
	declare -A mins opts maxs
	[ -n "${opt[minShapes]+x}" ] && parse_shapes mins "${opt[minShapes]}"
	[ -n "${opt[optShapes]+x}" ] && parse_shapes opts "${opt[optShapes]}"
	[ -n "${opt[maxShapes]+x}" ] && parse_shapes maxs "${opt[maxShapes]}"
	log I "Start parsing network model."
	if [ "$major" -lt 10 ]; then
		log W "[TRT] onnx2trt_utils.cpp:374: Your ONNX model has been generated with INT64 weights, while TensorRT does not natively support INT64. Attempting to cast down to INT32."
	fi
	log I "Finished parsing network model. Parse time: 0.01"
	for n in "${!mins[@]}" "${!opts[@]}" "${!maxs[@]}"; do
		[[ ",${dyn[*]}," == *",$n,"* ]] || [[ " ${dyn[*]} " == *" $n "* ]] || fail "Cannot find input tensor with name \"$n\" in the network inputs! Please make sure the input tensor names are correct."
	done
	for n in "${dyn[@]}"; do
		if [ -z "${mins[$n]+x}" ] || [ -z "${opts[$n]+x}" ] || [ -z "${maxs[$n]+x}" ]; then
			fail "Error[4]: [network.cpp::validate::3062] Error Code 4: Internal Error ($n: dynamic input is missing dimensions in profile 0.)" "Network validation failed." "Engine could not be created from network" "Building engine failed" "Failed to create engine from model or file." "Engine set up failed"
		fi
		IFS='x' read -ra a <<<"${mins[$n]}"; IFS='x' read -ra b <<<"${opts[$n]}"; IFS='x' read -ra c <<<"${maxs[$n]}"
		[ "${#a[@]}" -eq 2 ] && [ "${#b[@]}" -eq 2 ] && [ "${#c[@]}" -eq 2 ] || fail "Error[3]: [optimizationProfile.cpp::setDimensions::119] Error Code 3: API Usage Error (Parameter check failed: $n rank mismatch, the input has rank 2)"
		for i in 0 1; do
			if (( 10#${a[i]} > 10#${b[i]} || 10#${b[i]} > 10#${c[i]} )); then
				fail "Error[4]: [network.cpp::validate::3101] Error Code 4: Internal Error ($n: for dimension number $i in profile 0 does not satisfy MIN ≤ OPT ≤ MAX.)" "Network validation failed." "Building engine failed" "Failed to create engine from model or file." "Engine set up failed"
			fi
		done
		log I "Set shape of input tensor $n for optimization profile 0 to: MIN=${mins[$n]} OPT=${opts[$n]} MAX=${maxs[$n]}"
	done
	log I "[TRT] Local timing cache in use. Profiling results in this builder pass will not be stored."
	if [ "${M3ECTL_FAKE_TRT_FAIL:-}" = build ]; then
		fail "Error[2]: [virtualMemoryBuffer.cpp::resizePhysical::145] Error Code 2: OutOfMemory (no further information)" "Error[2]: [builder.cpp::buildSerializedNetwork::751] Error Code 2: Internal Error (Assertion engine != nullptr failed. )" "Engine could not be created from network" "Building engine failed" "Failed to create engine from model or file." "Engine set up failed"
	fi
	log I "[TRT] Graph optimization time: 0.5 seconds."
	log I "[TRT] Total Activation Memory: 123456789"
	log I "Engine built in 1.2 sec."
	if [ -n "${opt[saveEngine]+x}" ] && [ "${M3ECTL_FAKE_TRT_FAIL:-}" != noengine ]; then
		{
			echo "FAKETRT v$ver"
			for n in "${dyn[@]}"; do echo "profile $n ${mins[$n]} ${opts[$n]} ${maxs[$n]}"; done
			head -c 256 /dev/zero | tr '\0' 'e'
		} >"${opt[saveEngine]}" || fail "Cannot write engine to ${opt[saveEngine]}"
		log I "Engine saved to ${opt[saveEngine]}"
	fi
	if [ -n "${opt[timingCacheFile]+x}" ]; then
		echo "fake timing cache" >"${opt[timingCacheFile]}"
	fi
	[ -n "${opt[skipInference]+x}${opt[buildOnly]+x}" ] || log I "Starting inference"
	echo "&&&& PASSED $banner"
	exit 0
fi

[ -n "${opt[loadEngine]+x}" ] || fail "Model missing at: (no --onnx or --loadEngine given)"
eng=${opt[loadEngine]}
log I "Loading engine: $eng"
[ -f "$eng" ] || fail "Cannot open engine file: $eng" "Failed to create engine from model or file." "Engine set up failed"
first=$(head -n 1 "$eng" | tr -d '\0')
if [[ "$first" != FAKETRT\ v* ]]; then
	fail "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)" "4: [runtime.cpp::deserializeCudaEngine::65] Error Code 4: Internal Error (Engine deserialization failed.)" "Engine deserialization failed" "Failed to create engine from model or file." "Engine set up failed"
fi
if [ "$first" != "FAKETRT v$ver" ]; then
	fail "1: [stdArchiveReader.cpp::StdArchiveReader::40] Error Code 1: Serialization (Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed.Version tag does not match. Note: Current Version: $ver, Serialized Engine Version: ${first#FAKETRT v})" "4: [runtime.cpp::deserializeCudaEngine::65] Error Code 4: Internal Error (Engine deserialization failed.)" "Engine deserialization failed" "Failed to create engine from model or file." "Engine set up failed"
fi
log I "Engine loaded in 0.1 sec."
if [ -n "${opt[skipInference]+x}" ]; then
	echo "&&&& PASSED $banner"
	exit 0
fi
declare -A shp
[ -n "${opt[shapes]+x}" ] && parse_shapes shp "${opt[shapes]}"
elem=$(( major >= 10 ? 8 : 4 ))
while read -r tag n mn op mx; do
	[ "$tag" = profile ] || continue
	s=${shp[$n]:-$op}
	IFS='x' read -ra d <<<"$s"; IFS='x' read -ra lo <<<"$mn"; IFS='x' read -ra hi <<<"$mx"
	for i in 0 1; do
		if (( 10#${d[i]} < 10#${lo[i]} || 10#${d[i]} > 10#${hi[i]} )); then
			fail "Error[3]: [executionContext.cpp::setInputShape::2037] Error Code 3: API Usage Error (Parameter check failed: $n dimension $i is $((10#${d[i]})), outside the profile's [${lo[i]}, ${hi[i]}])" "Inference set up failed"
		fi
	done
	if [ "$major" -ge 10 ]; then log I "Input binding for $n with dimensions $s is created."; else log I "Created input binding for $n with dimensions $s"; fi
	declare "vol_$n=$(( 10#${d[0]} * 10#${d[1]} ))"
done < <(head -c 4096 "$eng" | tr -d '\0' | grep -a '^profile ')
if [ -n "${opt[loadInputs]+x}" ]; then
	IFS=',' read -ra li <<<"${opt[loadInputs]}"
	for p in "${li[@]}"; do
		[[ "$p" =~ ^(.+):(.+)$ ]] || fail "Invalid loadInputs spec: $p"
		n=${p%%:*}; n=${n#\'}; n=${n%\'}; f=${p#*:}
		[ -f "$f" ] || fail "Cannot open input file $f"
		vv="vol_$n"; want=$(( ${!vv:-0} * elem ))
		got=$(stat -c %s "$f")
		[ "$got" -eq "$want" ] || fail "Input $n: file $f has $got bytes but the binding needs $want bytes"
	done
fi
if [ -f "${M3ECTL_FAKE_TRT_OUTPUT:-/nonexistent}" ]; then
	tr '\n' ' ' <"$M3ECTL_FAKE_TRT_OUTPUT" | grep -o '"name" *: *"[^"]*"[^"]*"dimensions" *: *"[^"]*"' | while read -r line; do
		n=$(sed -E 's/.*"name" *: *"([^"]*)".*/\1/' <<<"$line"); d=$(sed -E 's/.*"dimensions" *: *"([^"]*)".*/\1/' <<<"$line")
		if [ "$major" -ge 10 ]; then log I "Output binding for $n with dimensions $d is created."; else log I "Created output binding for $n with dimensions $d"; fi
	done
fi
log I "Starting inference"
if [ -n "${opt[exportOutput]+x}" ]; then
	[ -f "${M3ECTL_FAKE_TRT_OUTPUT:-/nonexistent}" ] || fail "fake trtexec: set M3ECTL_FAKE_TRT_OUTPUT to the JSON --exportOutput should write"
	cp "$M3ECTL_FAKE_TRT_OUTPUT" "${opt[exportOutput]}" || fail "Cannot write ${opt[exportOutput]}"
fi
log I "Throughput: 1000 qps"
echo "&&&& PASSED $banner"
exit 0
