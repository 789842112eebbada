package triton

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/m3ectl/m3ectl/pkg/convert"
	"github.com/m3ectl/m3ectl/pkg/engine/onnxrt"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// The Python side of these tests: testdata/triton/standin holds the strict
// stand-in triton_python_backend_utils and run_model.py, which drives a
// generated model.py as Triton's Python backend would. Its BLS calls come
// here: execServer checks each request against the target model's
// config.pbtxt as Triton core checks an inference request, and runs the
// model's ONNX graph with ONNX Runtime.

const standinDir = "../../testdata/triton/standin"

// debianPython is Debian's python3 with python3-numpy (make setup installs
// them); the test skips without them.
func debianPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			if exec.Command(path, "-c", "import numpy").Run() == nil {
				return path
			}
		}
	}
	t.Skip("python3 with numpy not installed (make setup runs scripts/setup-debian.sh)")
	return ""
}

func needORT(t *testing.T) {
	t.Helper()
	if os.Getenv("ONNXRUNTIME_LIB") == "" {
		lib := "../../third_party/onnxruntime/libonnxruntime.so"
		if _, err := os.Stat(lib); err != nil {
			t.Skip("ONNX Runtime not set up (scripts/setup-ort.sh)")
		}
		os.Setenv("ONNXRUNTIME_LIB", mustAbs(t, lib)) // process-wide: parallel tests share the library
	}
	if err := onnxrt.Init(""); err != nil {
		t.Fatal(err)
	}
}

type wireTensor struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
	Data     string  `json:"data"`
}

type execRequest struct {
	ONNX    string       `json:"onnx"` // the stand-in tensorrt's engine: run this graph, no config
	Model   string       `json:"model_name"`
	Version int64        `json:"model_version"`
	Inputs  []wireTensor `json:"inputs"`
	Outputs []string     `json:"outputs"`
}

// execServer answers the stand-in's BLS calls for the models of root.
type execServer struct {
	root  string
	mu    sync.Mutex
	calls []execRequest // what arrived, data dropped
}

func startExecServer(t *testing.T, root string) (*execServer, string) {
	t.Helper()
	needORT(t)
	s := &execServer{root: root}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func (s *execServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req execRequest
	reply := map[string]any{}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply["error"] = err.Error()
	} else if outs, err := s.run(req); err != nil {
		reply["error"] = err.Error()
	} else {
		reply["outputs"] = outs
		if s.onGPU(req.Model) {
			reply["device"] = "gpu" // where a KIND_GPU model leaves its outputs
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(reply)
}

var wireToConfig = map[string]tritonpb.DataType{"INT32": tritonpb.DataType_TYPE_INT32, "INT64": tritonpb.DataType_TYPE_INT64, "FP32": tritonpb.DataType_TYPE_FP32}

// run checks req as Triton core's InferenceRequest::Normalize does
// (inference_request.cc@r26.06: every declared input given exactly once,
// no other, its data type as declared, the batch within max_batch_size,
// the other dims matching the config's) and runs the graph.
func (s *execServer) run(req execRequest) ([]wireTensor, error) {
	s.mu.Lock()
	s.calls = append(s.calls, execRequest{ONNX: req.ONNX, Model: req.Model, Outputs: req.Outputs, Inputs: append([]wireTensor(nil), req.Inputs...)})
	s.mu.Unlock()
	if req.ONNX != "" {
		return runGraph(req.ONNX, req.Inputs, req.Outputs, true)
	}
	text, err := os.ReadFile(filepath.Join(s.root, req.Model, "config.pbtxt"))
	if err != nil {
		return nil, fmt.Errorf("Request for unknown model: '%s' is not found", req.Model)
	}
	cfg, err := tritonpb.ParseConfig(text)
	if err != nil {
		return nil, err
	}
	if err := checkRequest(cfg, req); err != nil {
		return nil, err
	}
	// A tensorrt_plan model is computed by the graph it was built from (the
	// stand-in engine): TensorRT 8.x takes int32 where the graph has int64.
	onnx := filepath.Join(s.root, req.Model, newestVersion(filepath.Join(s.root, req.Model)), ONNXFile)
	return runGraph(onnx, req.Inputs, req.Outputs, cfg.Platform == "tensorrt_plan")
}

// checkRequest checks req as Triton core's InferenceRequest::Normalize does
// (inference_request.cc@r26.06: every declared input given exactly once,
// no other, its data type as declared, the batch within max_batch_size,
// the other dims matching the config's, requested outputs declared).
func checkRequest(cfg *tritonpb.ModelConfig, req execRequest) error {
	if len(req.Inputs) != len(cfg.Input) {
		return fmt.Errorf("[request id: <id_unknown>] expected %d inputs but got %d inputs for model '%s'", len(cfg.Input), len(req.Inputs), req.Model)
	}
	given := map[string]wireTensor{}
	for _, in := range req.Inputs {
		given[in.Name] = in
	}
	var batch int64 = -1
	for _, ci := range cfg.Input {
		in, ok := given[ci.Name]
		if !ok {
			return fmt.Errorf("[request id: <id_unknown>] input '%s' is missing for model '%s'", ci.Name, req.Model)
		}
		if wireToConfig[in.Datatype] != ci.DataType {
			return fmt.Errorf("[request id: <id_unknown>] inference input '%s' data-type is '%s', but model '%s' expects '%s'", in.Name, in.Datatype, req.Model, ci.DataType)
		}
		if len(in.Shape) != len(ci.Dims)+1 || !dimsMatch(ci.Dims, in.Shape[1:]) {
			return fmt.Errorf("[request id: <id_unknown>] unexpected shape for input '%s' for model '%s'. Expected [-1,%v], got %v", in.Name, req.Model, ci.Dims, in.Shape)
		}
		if batch >= 0 && in.Shape[0] != batch {
			return fmt.Errorf("inputs of model '%s' disagree on the batch size", req.Model)
		}
		batch = in.Shape[0]
		if batch > int64(cfg.MaxBatchSize) {
			return fmt.Errorf("[request id: <id_unknown>] inference request batch-size must be <= %d for '%s'", cfg.MaxBatchSize, req.Model)
		}
	}
	for _, o := range req.Outputs {
		found := false
		for _, co := range cfg.Output {
			found = found || co.Name == o
		}
		if !found {
			return fmt.Errorf("unexpected inference output '%s' for model '%s'", o, req.Model)
		}
	}
	return nil
}

// runGraph runs an ONNX graph on the given tensors with ONNX Runtime;
// widen casts int32 inputs to the graph's int64 (an engine built by
// TensorRT 8.x takes int32 where its graph had int64).
func runGraph(onnx string, inputs []wireTensor, outputs []string, widen bool) ([]wireTensor, error) {
	graphType := map[string]string{}
	if rep, err := convert.Inspect(onnx); err == nil {
		for _, in := range rep.Inputs {
			graphType[in.Name] = in.DType
		}
	}
	var names []string
	var values []ort.Value
	defer func() {
		for _, v := range values {
			v.Destroy()
		}
	}()
	for _, in := range inputs {
		raw, err := base64.StdEncoding.DecodeString(in.Data)
		if err != nil {
			return nil, err
		}
		n := int64(1)
		for _, d := range in.Shape {
			n *= d
		}
		var v ort.Value
		switch in.Datatype {
		case "INT64":
			if int64(len(raw)) != 8*n {
				return nil, fmt.Errorf("input %s: %d bytes for %d elements", in.Name, len(raw), n)
			}
			vals := make([]int64, n)
			binary.Read(bytes.NewReader(raw), binary.LittleEndian, vals)
			v, err = ort.NewTensor(ort.NewShape(in.Shape...), vals)
		case "INT32":
			if int64(len(raw)) != 4*n {
				return nil, fmt.Errorf("input %s: %d bytes for %d elements", in.Name, len(raw), n)
			}
			vals := make([]int32, n)
			binary.Read(bytes.NewReader(raw), binary.LittleEndian, vals)
			if widen && graphType[in.Name] == "int64" {
				wide := make([]int64, n)
				for i, x := range vals {
					wide[i] = int64(x)
				}
				v, err = ort.NewTensor(ort.NewShape(in.Shape...), wide)
				break
			}
			v, err = ort.NewTensor(ort.NewShape(in.Shape...), vals)
		default:
			return nil, fmt.Errorf("input %s: datatype %s not used by encoders", in.Name, in.Datatype)
		}
		if err != nil {
			return nil, err
		}
		names = append(names, in.Name)
		values = append(values, v)
	}
	sess, err := ort.NewDynamicAdvancedSession(onnx, names, outputs, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", onnx, err)
	}
	defer sess.Destroy()
	outs := make([]ort.Value, len(outputs))
	if err := sess.Run(values, outs); err != nil {
		return nil, err
	}
	var reply []wireTensor
	for i, o := range outs {
		t, ok := o.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("output %s is not float32", outputs[i])
		}
		var buf bytes.Buffer
		for _, f := range t.GetData() {
			binary.Write(&buf, binary.LittleEndian, math.Float32bits(f))
		}
		reply = append(reply, wireTensor{Name: outputs[i], Datatype: "FP32", Shape: t.GetShape(), Data: base64.StdEncoding.EncodeToString(buf.Bytes())})
		o.Destroy()
	}
	return reply, nil
}

// onGPU says whether model runs KIND_GPU instances.
func (s *execServer) onGPU(model string) bool {
	text, err := os.ReadFile(filepath.Join(s.root, model, "config.pbtxt"))
	if err != nil {
		return false
	}
	cfg, err := tritonpb.ParseConfig(text)
	if err != nil {
		return false
	}
	for _, g := range cfg.InstanceGroup {
		if g.Kind == tritonpb.ModelInstanceGroup_KIND_GPU {
			return true
		}
	}
	return false
}

func newestVersion(dir string) string {
	ents, _ := os.ReadDir(dir)
	best := -1
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() && n > best {
			best = n
		}
	}
	return strconv.Itoa(best)
}

// runModel runs testdata/triton/standin/run_model.py on job and decodes
// its answer into out.
func runModel(t *testing.T, python, execURL string, job map[string]any, out any, env ...string) {
	t.Helper()
	res, stderr, err := runModelRaw(python, execURL, job, env...)
	if err != nil {
		t.Fatalf("run_model.py: %v\n%s", err, stderr)
	}
	if err := json.Unmarshal(res, out); err != nil {
		t.Fatalf("run_model.py answered %q: %v", res, err)
	}
}

// runModelRaw runs run_model.py and returns its stdout, stderr and error.
func runModelRaw(python, execURL string, job map[string]any, env ...string) ([]byte, string, error) {
	b, _ := json.Marshal(job)
	cmd := exec.Command(python, filepath.Join(standinDir, "run_model.py"))
	cmd.Stdin = bytes.NewReader(b)
	cmd.Env = append(append(os.Environ(), "M3ECTL_STANDIN_EXEC_URL="+execURL, "PYTHONDONTWRITEBYTECODE=1"), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	res, err := cmd.Output()
	return res, stderr.String(), err
}
