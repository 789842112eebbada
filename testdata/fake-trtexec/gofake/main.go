// Command gofake stands in for NVIDIA's trtexec in tests, where TensorRT
// cannot be installed, and computes real outputs. Tests build it once and
// place it as DIR/tensorrt-MAJOR.MINOR.PATCH/trtexec; the folder name is the
// TensorRT version it behaves as (8.6.1, 10.0.0, 10.3.0, 10.16.0, 11.0.0,
// 11.1.0 — those options_gen.go lists).
//
// It accepts exactly the options that version's sampleOptions.cpp
// (AllOptions::parse) accepts and answers anything else as trtexec.cpp
// does ("Unknown option: --fp16 ", then FAILED). A build (--onnx) checks the
// graph's dynamic inputs against --minShapes/--optShapes/--maxShapes and
// writes an engine that records the ONNX, the profile and the engine's
// dtypes (int32 ids before 10.0, int64 from 10.0). With --fp16 (or --best)
// on a weakly typed build it computes with the fp16 AutoCast of the graph
// (written beside the engine), so an fp16 engine's outputs differ from
// fp32 as a real one's do. --loadEngine checks the
// version, --shapes against the profile, each --loadInputs file's byte
// size against the engine's dtype, then runs the ONNX through ONNX Runtime
// on those inputs and writes --exportOutput as trtexec does: name,
// dimensions "AxBxC", values printed as C++ streams print floats (6
// significant digits). Log lines follow the version's wording (binding
// lines with " and type T" from 10.16).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/m3ectl/m3ectl/pkg/convert"
)

var (
	version int // 8601, 100300, 110100 …
	banner  string
)

func major() int {
	if version >= 100000 {
		return version / 10000
	}
	return version / 1000
}

func logf(level, format string, a ...any) {
	fmt.Printf("%s [%s] %s\n", time.Now().Format("[01/02/2006-15:04:05]"), level, fmt.Sprintf(format, a...))
}

func fail(lines ...string) {
	for _, l := range lines {
		logf("E", "%s", l)
	}
	fmt.Println("&&&& FAILED " + banner)
	os.Exit(1)
}

var versionDirRE = regexp.MustCompile(`^tensorrt-(\d+)\.(\d+)\.(\d+)$`)

func readVersion() {
	exe, err := os.Executable()
	if err == nil {
		exe, _ = filepath.EvalSymlinks(exe)
	}
	m := versionDirRE.FindStringSubmatch(filepath.Base(filepath.Dir(exe)))
	if m == nil {
		fmt.Fprintln(os.Stderr, "gofake: place me as tensorrt-X.Y.Z/trtexec")
		os.Exit(2)
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	c, _ := strconv.Atoi(m[3])
	if a >= 10 {
		version = a*10000 + b*100 + c
	} else {
		version = a*1000 + b*100 + c
	}
	if _, ok := acceptedOptions[version]; !ok {
		fmt.Fprintf(os.Stderr, "gofake: no option list for TensorRT %d\n", version)
		os.Exit(2)
	}
}

func main() {
	readVersion()
	banner = fmt.Sprintf("TensorRT.trtexec [TensorRT v%d] # %s", version, strings.Join(os.Args, " "))
	if p := os.Getenv("M3ECTL_FAKE_TRT_ARGV"); p != "" {
		if f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, strings.Join(os.Args[1:], " "))
			f.Close()
		}
	}
	fmt.Println("&&&& RUNNING " + banner)
	opts := parseArgs(os.Args[1:])
	if _, ok := opts["help"]; ok {
		fmt.Println("=== Model Options ===\n  --onnx=<file>               ONNX model\n=== Build Options ===\n  --minShapes=spec  --optShapes=spec  --maxShapes=spec  --memPoolSize=poolspec  --skipInference\n=== Inference Options ===\n  --loadEngine=<file>  --shapes=spec  --loadInputs=spec  --exportOutput=<file>")
		os.Exit(0)
	}
	logf("I", "=== Model Options ===")
	if _, ok := opts["onnx"]; ok {
		build(opts)
		return
	}
	if _, ok := opts["loadEngine"]; ok {
		infer(opts)
		return
	}
	fail("Model missing at: (no --onnx or --loadEngine given)")
}

// parseArgs takes --name or --name=value, as argsToArgumentsMap does
// (samples/common/sampleOptions.cpp), and refuses names the version's
// parser does not consume (samples/trtexec/trtexec.cpp@v11.0:265).
func parseArgs(args []string) map[string]string {
	accepted := map[string]bool{}
	for _, o := range acceptedOptions[version] {
		accepted[strings.TrimPrefix(o, "--")] = true
	}
	opts := map[string]string{}
	var unknown []string
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			unknown = append(unknown, "Unknown option: "+a+" ")
			continue
		}
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !accepted[k] {
			unknown = append(unknown, "Unknown option: --"+k+" "+v)
			continue
		}
		opts[k] = v
	}
	if len(unknown) > 0 {
		fail(unknown...)
	}
	return opts
}

// engineFile is what the fake serialises: enough to run the model again.
type engineFile struct {
	Fake    string         `json:"fake_trtexec"`
	Version int            `json:"version"`
	ONNX    string         `json:"onnx"`
	Inputs  []engineTensor `json:"inputs"`
	Outputs []engineTensor `json:"outputs"`
	Padding string         `json:"padding"`
}

type engineTensor struct {
	Name          string  `json:"name"`
	DType         string  `json:"dtype"` // the engine's (TensorRT's) type
	ONNXDType     string  `json:"onnx_dtype"`
	Min, Opt, Max []int64 `json:",omitempty"`
	Dims          []string
}

func parseShapes(spec string) map[string][]int64 {
	out := map[string][]int64{}
	if spec == "" {
		return out
	}
	for _, part := range strings.Split(spec, ",") {
		i := strings.LastIndexByte(part, ':')
		if i <= 0 {
			fail(fmt.Sprintf("Invalid shape spec: %q (expected name:AxBx...)", part))
		}
		name := strings.Trim(part[:i], "'")
		var dims []int64
		for _, d := range strings.Split(part[i+1:], "x") {
			n, err := strconv.ParseInt(d, 10, 64)
			if err != nil || n < 1 {
				fail(fmt.Sprintf("Invalid dimension %s in shape spec %q", d, part))
			}
			dims = append(dims, n)
		}
		if _, dup := out[name]; dup {
			fail("Duplicate shape for input " + name)
		}
		out[name] = dims
	}
	return out
}

var poolRE = regexp.MustCompile(`^(workspace|dlaSRAM|dlaLocalDRAM|dlaGlobalDRAM|tacticSharedMem):([0-9]+(\.[0-9]+)?)([BKMG]?)$`)

// workspaceMiB is what the version makes of --memPoolSize's workspace
// (sampleOptions.cpp@v8.6.1:60 std::stod; @v10.0.0:113 the suffix
// multiplied in, then read as MiB; @v10.3.0:1134 default suffix M).
func workspaceMiB(spec string) float64 {
	mib := -1.0
	for _, p := range strings.Split(spec, ",") {
		m := poolRE.FindStringSubmatch(p)
		if m == nil {
			fail("Invalid memPoolSize spec: " + p + " conversion failure: failed to parse --memPoolSize. Please double check your input string.")
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m[4]]
		switch {
		case version < 100000: // stod stops at the suffix
		case version < 100300:
			v *= mult
		default:
			if m[4] == "" {
				mult = 1 << 20
			}
			v = v * mult / (1 << 20)
		}
		if m[1] == "workspace" {
			mib = v
		}
	}
	return mib
}

func build(opts map[string]string) {
	path := opts["onnx"]
	if _, ok := opts["loadEngine"]; ok {
		fail("--onnx and --loadEngine cannot be used together")
	}
	logf("I", "Start parsing network model.")
	rep, err := convert.Inspect(path)
	if err != nil {
		fail("Failed to parse onnx file", "Parsing model failed", "Failed to create engine from model or file.", "Engine set up failed")
	}
	if spec, ok := opts["memPoolSize"]; ok {
		if mib := workspaceMiB(spec); mib >= 0 {
			logf("I", "Memory pool workspace: %.0f MiB", mib)
		}
	}
	if lvl, ok := opts["builderOptimizationLevel"]; ok {
		if n, err := strconv.Atoi(lvl); err != nil || n < 0 || n > 5 {
			fail("Invalid builderOptimizationLevel: " + lvl + " (0 to 5)")
		}
	}
	_, strongly := opts["stronglyTyped"]
	if major() >= 11 {
		strongly = true
	}
	if strongly {
		for _, f := range []string{"fp16", "int8", "bf16", "best"} {
			if _, ok := opts[f]; ok && major() == 10 {
				logf("W", "Invalid usage, setting %s mode is not allowed if graph is strongly typed. Disabling BuilderFlag::k%s.", f, strings.ToUpper(f))
			}
		}
	}
	if major() < 10 {
		for _, in := range rep.Inputs {
			if in.DType == "int64" {
				logf("W", "[TRT] onnx2trt_utils.cpp:374: Your ONNX model has been generated with INT64 weights, while TensorRT does not natively support INT64. Attempting to cast down to INT32.")
				break
			}
		}
	}
	logf("I", "Finished parsing network model. Parse time: 0.01")
	mins, optsh, maxs := parseShapes(opts["minShapes"]), parseShapes(opts["optShapes"]), parseShapes(opts["maxShapes"])
	known := map[string]bool{}
	for _, in := range rep.Inputs {
		known[in.Name] = true
	}
	for _, m := range []map[string][]int64{mins, optsh, maxs} {
		for n := range m {
			if !known[n] {
				fail(fmt.Sprintf("Cannot find input tensor with name \"%s\" in the network inputs! Please make sure the input tensor names are correct.", n))
			}
		}
	}
	eng := engineFile{Fake: "FAKETRT", Version: version, ONNX: absPath(path), Padding: strings.Repeat("e", 256)}
	for _, in := range rep.Inputs {
		a, b, c := mins[in.Name], optsh[in.Name], maxs[in.Name]
		if a == nil || b == nil || c == nil {
			fail(fmt.Sprintf("Error[4]: [network.cpp::validate::3062] Error Code 4: Internal Error (%s: dynamic input is missing dimensions in profile 0.)", in.Name),
				"Network validation failed.", "Engine could not be created from network", "Building engine failed", "Failed to create engine from model or file.", "Engine set up failed")
		}
		if len(a) != len(in.Shape) || len(b) != len(in.Shape) || len(c) != len(in.Shape) {
			fail(fmt.Sprintf("Error[3]: [optimizationProfile.cpp::setDimensions::119] Error Code 3: API Usage Error (Parameter check failed: %s rank mismatch, the input has rank %d)", in.Name, len(in.Shape)))
		}
		for i := range a {
			if a[i] > b[i] || b[i] > c[i] {
				fail(fmt.Sprintf("Error[4]: [network.cpp::validate::3101] Error Code 4: Internal Error (%s: for dimension number %d in profile 0 does not satisfy MIN ≤ OPT ≤ MAX.)", in.Name, i),
					"Network validation failed.", "Building engine failed", "Failed to create engine from model or file.", "Engine set up failed")
			}
		}
		logf("I", "Set shape of input tensor %s for optimization profile 0 to: MIN=%s OPT=%s MAX=%s", in.Name, dims(a), dims(b), dims(c))
		eng.Inputs = append(eng.Inputs, engineTensor{Name: in.Name, DType: engineDType(in.DType), ONNXDType: in.DType, Min: a, Opt: b, Max: c})
	}
	for _, out := range rep.Outputs {
		var ds []string
		for _, d := range out.Shape {
			ds = append(ds, d.String())
		}
		eng.Outputs = append(eng.Outputs, engineTensor{Name: out.Name, DType: engineDType(out.DType), ONNXDType: out.DType, Dims: ds})
	}
	logf("I", "[TRT] Local timing cache in use. Profiling results in this builder pass will not be stored.")
	if os.Getenv("M3ECTL_FAKE_TRT_FAIL") == "fatal" {
		logf("F", "[TRT] [defaultAllocator.cpp::allocate::31] Error Code 1: Cuda Runtime (out of memory)")
		fail("Engine could not be created from network", "Building engine failed", "Failed to create engine from model or file.", "Engine set up failed")
	}
	logf("I", "[TRT] Graph optimization time: 0.5 seconds.")
	logf("I", "[TRT] Total Activation Memory: 123456789")
	logf("I", "Engine built in 1.2 sec.")
	if out, ok := opts["saveEngine"]; ok {
		_, fp16 := opts["fp16"]
		_, best := opts["best"]
		if (fp16 || best) && !strongly {
			// The builder may pick fp16 kernels anywhere: compute as the fp16
			// AutoCast of the graph would, so parity sees fp16 rounding.
			half := out + ".fake-fp16.onnx"
			if _, err := convert.Convert(path, half, convert.ConvertOptions{FP16: true}); err == nil {
				eng.ONNX = absPath(half)
			} else {
				logf("W", "fake trtexec: fp16 not emulated (%v); computing in fp32", err)
			}
		}
		b, _ := json.Marshal(eng)
		if err := os.WriteFile(out, b, 0o644); err != nil {
			fail("Cannot write engine to " + out)
		}
		logf("I", "Engine saved to %s", out)
	}
	if tc, ok := opts["timingCacheFile"]; ok {
		_ = os.WriteFile(tc, []byte("fake timing cache\n"), 0o644)
	}
	if _, ok := opts["skipInference"]; !ok {
		logf("I", "Starting inference")
	}
	fmt.Println("&&&& PASSED " + banner)
}

// engineDType: TensorRT before 10 has no INT64 (the parser casts to INT32).
func engineDType(onnx string) string {
	if onnx == "int64" && major() < 10 {
		return "int32"
	}
	return onnx
}

// trtTypeName is how sampleOptions.cpp@v10.16:2066 prints a DataType.
func trtTypeName(dtype string) string {
	return map[string]string{"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "int32": "int32", "int64": "int64", "int8": "int8", "bool": "bool"}[dtype]
}

func dims(d []int64) string {
	s := make([]string, len(d))
	for i, v := range d {
		s[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(s, "x")
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
